"""The bot's own tables: everything that must survive a restart or be shared by replicas.

Times are stored as naive UTC (UTCDateTime) so that SQLite, which compares them as strings, and
PostgreSQL order them the same way. The states a row moves through are enums stored as their
string values (EnumText), and the options a request runs with are a model (StoredOptions)
stored as JSON: code never reads a bare string or a JSON bag.

The annotations are not postponed (no `from __future__ import annotations`): SQLAlchemy would
evaluate each `Mapped[...]` from its string, and the mappings are made at start-up.
"""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from bot.requests import StoredOptions, Trigger

EnumT = TypeVar("EnumT", bound=StrEnum)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class EnumText(TypeDecorator[EnumT], Generic[EnumT]):
    """A StrEnum stored as its value in a VARCHAR (no database enum type to migrate)."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[EnumT], length: int = 16) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: EnumT | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> EnumT | None:
        return None if value is None else self.enum(value)


class OptionsJSON(TypeDecorator[StoredOptions]):
    """StoredOptions as JSON (a plain dict is accepted on the way in)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(
        self, value: StoredOptions | dict[str, Any] | None, dialect: Dialect
    ) -> dict[str, Any]:
        if value is None:
            return StoredOptions().model_dump(mode="json")
        return StoredOptions.model_validate(value).model_dump(mode="json")

    def process_result_value(self, value: Any, dialect: Dialect) -> StoredOptions:
        return StoredOptions.model_validate(value or {})


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}  # noqa: RUF012


class RequestStatus(StrEnum):
    PENDING = "pending"  # waiting to be sent (or re-sent after a transient failure)
    DISPATCHED = "dispatched"  # Codegen accepted it; run_id is set
    FAILED = "failed"  # the user has been told why; never retried


class RequestKind(StrEnum):
    CREATE = "create"
    RESUME = "resume"


class FollowReason(StrEnum):
    """Why a follow-up in a run's thread started a new run instead of resuming that run."""

    ENDED = "ended"  # the run had ended: only a paused run can be resumed
    NOT_RESUMABLE = "not_resumable"  # Codegen refused the resume


class ReplyKind(StrEnum):
    """The once-only thread replies of a run."""

    FINAL = "final"  # the run ended: summary and pull requests
    PAUSE = "pause"  # the run is PAUSED: the agent's question, asking for a reply


class ReplyState(StrEnum):
    """TrackedRun.final_reply_state: none → posting → posted, per reply kind. "posting" after
    a crash means "look in the thread for it before posting again"."""

    NONE = "none"
    FINAL_POSTING = "posting"
    FINAL_POSTED = "posted"
    PAUSE_POSTING = "pause-posting"
    PAUSE_POSTED = "pause-posted"

    @classmethod
    def posting(cls, kind: ReplyKind) -> "ReplyState":
        return cls.FINAL_POSTING if kind is ReplyKind.FINAL else cls.PAUSE_POSTING

    @classmethod
    def posted(cls, kind: ReplyKind) -> "ReplyState":
        return cls.FINAL_POSTED if kind is ReplyKind.FINAL else cls.PAUSE_POSTED

    @property
    def pause_reply(self) -> bool:
        """Some pause reply was begun (it may have been posted)."""
        return self in (ReplyState.PAUSE_POSTING, ReplyState.PAUSE_POSTED)


class QueuedRequest(Base):
    """The outbox: committed before any call to Codegen, kept until a run id or a reason."""

    __tablename__ = "queued_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # uuid, also in metadata
    org_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[RequestKind] = mapped_column(EnumText(RequestKind), default=RequestKind.CREATE)
    status: Mapped[RequestStatus] = mapped_column(
        EnumText(RequestStatus), default=RequestStatus.PENDING
    )

    prompt: Mapped[str] = mapped_column(Text)
    images: Mapped[list[Any]] = mapped_column(JSON, default=list)  # data URIs
    skipped_files: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Resolved repo/model/agent with the source of each, and the repository id.
    options: Mapped[StoredOptions] = mapped_column(OptionsJSON, default=StoredOptions)
    run_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    resume_run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    parent_run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The RunRequest as the handler built it, so a request whose preparation was cut short by a
    # crash can be prepared again from the store alone.
    request_json: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Images downloaded, options resolved, card posted: ready to send.
    prepared: Mapped[bool] = mapped_column(Boolean, default=False)
    # The queue position last shown on the card, so it is edited only when it changes.
    queue_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When that note was put on the card: queue lines change at most every so often.
    queue_noted_at: Mapped[datetime | None] = mapped_column(nullable=True)

    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[Trigger] = mapped_column(EnumText(Trigger, 32))
    thread_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    card_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The last attempt may have reached Codegen: look for request_id in recent runs first.
    ambiguous: Mapped[bool] = mapped_column(Boolean, default=False)
    next_attempt_at: Mapped[datetime]
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_queued_requests_due", "status", "next_attempt_at"),
        # A person's requests, newest change first: `/codegen list`, App Home (bot.home).
        Index("ix_queued_requests_user", "user_id", "updated_at"),
    )

    def queue_key(self) -> tuple[datetime, str]:
        """Queue order: oldest first, the id breaking ties (the same in every query)."""
        return self.created_at, self.id


class TrackedRun(Base):
    """A Codegen agent run the bot reports on, with its own next poll time."""

    __tablename__ = "tracked_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    org_id: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str] = mapped_column(ForeignKey("queued_requests.id"))
    prompt: Mapped[str] = mapped_column(Text, default="")
    options: Mapped[StoredOptions] = mapped_column(OptionsJSON, default=StoredOptions)

    status: Mapped[str | None] = mapped_column(String(64), nullable=True)
    web_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    pull_requests: Mapped[list[Any]] = mapped_column(JSON, default=list)

    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    # Whose message the run was made from, when someone else sent it (the message shortcut).
    author_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    thread_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    message_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    card_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)

    tracking: Mapped[bool] = mapped_column(Boolean, default=True)
    next_poll_at: Mapped[datetime]
    poll_interval: Mapped[float] = mapped_column(Float)
    # When it was last read (a list page or a GET): with reads to spare, the tracker reads
    # runs not read for a while even before they are due, never more often than the minimum.
    polled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # The status whose card edit and reactions have been done (conditional update decides).
    notified_status: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The notified_status the card is known to show (written after the edit went through):
    # a crash between claiming an edit and making it leaves the two apart.
    card_shown: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The final reply (and a pause's question) are posted once: see ReplyState.
    final_reply_state: Mapped[ReplyState] = mapped_column(
        EnumText(ReplyState), default=ReplyState.NONE
    )
    final_reply_ts: Mapped[str | None] = mapped_column(String(32), nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Who asked Codegen to stop it, and when (Codegen accepted): the card says so until the
    # run reaches a final status, then shows who stopped it.
    stop_requested_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    stop_requested_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # A follow-up that became a new run: the run it follows, and why it is not a resume of it
    # (FollowReason). The card names both runs.
    follows_run_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    follow_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)

    created_at: Mapped[datetime]
    started_at: Mapped[datetime]
    last_change_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)

    # The run's newest steps from Codegen's logs, newest first ({"tool", "thought"}: plain
    # text, escaped when rendered), when they were last read, and when they last changed: the
    # card's progress lines change at most once per read, reads of a run are 10 s apart.
    progress: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    progress_read_at: Mapped[datetime | None] = mapped_column(nullable=True)
    progress_changed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        Index("ix_tracked_runs_due", "tracking", "next_poll_at"),
        Index("ix_tracked_runs_thread", "channel_id", "thread_ts"),
        # A person's runs, newest change first: App Home (bot.home).
        Index("ix_tracked_runs_user", "user_id", "last_change_at"),
    )

    def queue_key(self) -> tuple[datetime, str]:
        """Poll order: most overdue first, the id breaking ties."""
        return self.next_poll_at, f"{self.id:020d}"


class StopRefusal(Base):
    """Codegen refused a stop for this organization (its stop endpoint is beta): the bot stops
    offering the Stop button there until it restarts, and the doctor says why."""

    __tablename__ = "stop_refusals"

    org_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status_code: Mapped[int | None] = mapped_column(nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    refused_at: Mapped[datetime]


class PullRequestState(Base):
    """The state someone set a run's pull request to from the final reply's buttons (Codegen
    accepted it): the reply is rendered again from these rows, by any replica, after a
    restart too."""

    __tablename__ = "pull_request_states"

    # Codegen's id of the pull request (`github_pull_requests[].id`).
    pr_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    run_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(32))  # open, closed, draft, ready_for_review
    set_by: Mapped[str] = mapped_column(String(32))  # the Slack user who pressed
    set_at: Mapped[datetime]

    __table_args__ = (Index("ix_pull_request_states_run", "run_id"),)


class MissingEndpoint(Base):
    """An endpoint Codegen answered 404 for in this organization (the alpha run logs): the bot
    stops calling it until it restarts, and the doctor says so. In the store so replicas agree."""

    __tablename__ = "missing_endpoints"

    org_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    endpoint: Mapped[str] = mapped_column(String(64), primary_key=True)
    message: Mapped[str] = mapped_column(Text, default="")
    found_at: Mapped[datetime]


class SeenEvent(Base):
    """Slack event ids already handled, so a retried delivery produces nothing new."""

    __tablename__ = "seen_slack_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime]


class ChannelDefaults(Base):
    __tablename__ = "channel_defaults"

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    repo: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    agent_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_by: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[datetime]


class PersonalToken(Base):
    """A person's own Codegen API token, sealed (bot.secret_box): their runs are made with it.
    The token itself is never stored in plain text."""

    __tablename__ = "personal_tokens"

    slack_user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    sealed_token: Mapped[str] = mapped_column(Text)
    # sha256 prefix of the token: its rate budgets are keyed by it (never the token).
    fingerprint: Mapped[str] = mapped_column(String(16))
    codegen_user_id: Mapped[int] = mapped_column(BigInteger)
    codegen_email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    created_at: Mapped[datetime]
    # Codegen rejected it (revoked, expired): set once, when the person is told.
    rejected_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ChannelDefaultsChange(Base):
    """Who changed a channel's defaults, when, and from what to what (`/codegen config` shows
    the last change; the rows are the history)."""

    __tablename__ = "channel_defaults_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32))
    changed_at: Mapped[datetime]
    # {"repo": …, "model": …, "agent_type": …} before and after (None: not set).
    before: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    after: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_channel_defaults_changes_channel", "channel_id", "changed_at"),)


class RateBudget(Base):
    """One row per (org, bucket): the lock every replica takes before spending from the budget,
    and the block set by a 429's Retry-After."""

    __tablename__ = "rate_budgets"

    org_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    bucket: Mapped[str] = mapped_column(String(64), primary_key=True)
    blocked_until: Mapped[datetime | None] = mapped_column(nullable=True)
    touched_at: Mapped[datetime]


class RateSpend(Base):
    """One row per call spent from a budget; the sliding window counts these."""

    __tablename__ = "rate_spends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[int] = mapped_column(BigInteger)
    bucket: Mapped[str] = mapped_column(String(64))
    spent_at: Mapped[datetime]

    __table_args__ = (Index("ix_rate_spends_window", "org_id", "bucket", "spent_at"),)


class HomeTab(Base):
    """A person who opened the bot's App Home: their Home is published again when their runs
    change (bot.home), at most every so often; people who never opened it cost no calls."""

    __tablename__ = "home_tabs"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    opened_at: Mapped[datetime]
    # When the view now in Slack was published (None: never yet). Replicas publish one
    # person's Home in turn: each moves it forward only from the value it read.
    published_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AgentSession(Base):
    """A thread the bot made a Slack agent session of (bot.slack.sessions): the status Slack
    should show (`wanted`, from the card) and the last one it took (`sent`), so a status
    that could not be sent is sent later, and none is sent twice."""

    __tablename__ = "agent_sessions"

    channel_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    thread_ts: Mapped[str] = mapped_column(String(32), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    initiator_user_id: Mapped[str] = mapped_column(String(32))
    wanted: Mapped[str] = mapped_column(String(16))
    sent: Mapped[str | None] = mapped_column(String(16), nullable=True)
    updated_at: Mapped[datetime]

    __table_args__ = (Index("ix_agent_sessions_unsent", "wanted", "sent"),)


class SessionSupport(Base):
    """A workspace where Slack refused agent sessions (not an agent app, feature off): the
    bot uses the card alone there, and the doctor says so."""

    __tablename__ = "session_support"

    team_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    error: Mapped[str] = mapped_column(String(64))
    refused_at: Mapped[datetime]
