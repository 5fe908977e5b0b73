"""The Codegen API as documented: typed models, the client, how its errors map."""
