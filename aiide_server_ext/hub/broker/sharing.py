"""Conversations a student shares with their instructors when they ask for help.

Nothing is shared unless the student shares it: their own server sends the broker a copy
of one conversation (the transcript as the chat's Markdown export, with a note) when they
press *Share with my instructor*; the copy is stored in the broker's database
(``broker_shares``) with the student's courses at that moment. Instructors of those
courses list and read it, read-only (the dashboard shows it as text); every share, read
and revocation is audited. Stopping sharing deletes the copy: from then on nobody can read
it (the audit trail keeps who read it when, never the transcript). Sharing the same
conversation again replaces the copy with the conversation as it is now.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .durable import StateUnavailable
from .handlers import BrokerHandler

if TYPE_CHECKING:
    from aiide_server_ext.gateway.store import Store
    from aiide_server_ext.stores import Conn

    from .identity import HubCaller
    from .service import Broker

#: Shares one student keeps at once (each is a copy of a conversation in the database).
MAX_SHARES_PER_STUDENT = 20
MAX_TITLE_CHARS = 200
MAX_NOTE_CHARS = 2000
#: The transcript's size bound; the route's body limit (max_api_body_bytes) comes first.
MAX_TRANSCRIPT_CHARS = 512 * 1024


class ShareError(ValueError):
    """A share request that is not valid (``code`` for the answer)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Share:
    id: str
    user: str
    conversation: str
    courses: tuple[str, ...]
    title: str
    note: str
    shared_at: float
    transcript: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "conversation": self.conversation,
            "courses": list(self.courses),
            "title": self.title,
            "note": self.note,
            "shared_at": _iso(self.shared_at),
        }


def _iso(t: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")


def parse_share(body: Any) -> tuple[str, str, str, str]:
    """(conversation, title, note, transcript) of a student's share request."""
    if not isinstance(body, dict):
        raise ShareError(400, "invalid_share", "a share is {conversation, title, transcript}")
    conversation = body.get("conversation")
    title = body.get("title") or "Untitled conversation"
    note = body.get("note") or ""
    transcript = body.get("transcript")
    if not isinstance(conversation, str) or not 0 < len(conversation) <= 100:
        raise ShareError(400, "invalid_share", "conversation: the conversation's id")
    if not isinstance(title, str) or not isinstance(note, str):
        raise ShareError(400, "invalid_share", "title and note are text")
    if not isinstance(transcript, str) or not transcript.strip():
        raise ShareError(400, "invalid_share", "transcript: the conversation as text")
    if len(transcript) > MAX_TRANSCRIPT_CHARS:
        raise ShareError(
            413, "share_too_large", f"the conversation is longer than {MAX_TRANSCRIPT_CHARS:,} "
            "characters; start a new one for your question",
        )  # fmt: skip
    return conversation, title[:MAX_TITLE_CHARS], note[:MAX_NOTE_CHARS], transcript


def _row(row: Any, transcript: bool) -> Share:
    return Share(
        id=str(row[0]),
        user=str(row[1]),
        conversation=str(row[2]),
        courses=tuple(json.loads(row[3])),
        title=str(row[4]),
        note=str(row[5]),
        shared_at=float(row[6]),
        transcript=str(row[7]) if transcript else "",
    )


_SELECT = "SELECT id, username, conversation, courses, title, note, shared_at"
_SUMMARIES = _SELECT + " FROM broker_shares"
_WHOLE = _SELECT + ", transcript FROM broker_shares WHERE id = ?"


class Shares:
    """The ``broker_shares`` table; the handlers below decide who may do what."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def put(
        self, user: str, courses: list[str], conversation: str, title: str, note: str, text: str
    ) -> tuple[Share, bool]:
        """(the share, replaced an earlier copy of the same conversation)."""

        def write(conn: Conn) -> tuple[Share, bool]:
            conn.lock(f"broker-shares:{user}")
            old = conn.execute(
                "SELECT id FROM broker_shares WHERE username = ? AND conversation = ?",
                (user, conversation),
            ).fetchone()
            if old is None:
                (count,) = conn.execute(
                    "SELECT COUNT(*) FROM broker_shares WHERE username = ?", (user,)
                ).fetchone()
                if int(count) >= MAX_SHARES_PER_STUDENT:
                    raise ShareError(
                        409, "too_many_shares", f"you share {MAX_SHARES_PER_STUDENT} "
                        "conversations already; stop sharing one first",
                    )  # fmt: skip
            share = Share(
                id=str(old[0]) if old else secrets.token_urlsafe(12),
                user=user,
                conversation=conversation,
                courses=tuple(courses),
                title=title,
                note=note,
                shared_at=time.time(),
            )
            conn.execute(
                "INSERT INTO broker_shares (id, username, conversation, courses, title, note,"
                " transcript, shared_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (username, conversation) DO UPDATE SET courses = excluded.courses,"
                " title = excluded.title, note = excluded.note,"
                " transcript = excluded.transcript, shared_at = excluded.shared_at",
                (share.id, user, conversation, json.dumps(courses), title, note, text,
                 share.shared_at),
            )  # fmt: skip
            return share, old is not None

        return await self.store.awrite(write)

    async def of_user(self, user: str) -> list[Share]:
        def read(conn: Conn) -> list[Share]:
            rows = conn.execute(
                _SUMMARIES + " WHERE username = ? ORDER BY shared_at DESC",
                (user,),
            )
            return [_row(r, False) for r in rows]

        return await self.store.aread(read)

    async def in_courses(self, courses: set[str]) -> list[Share]:
        """Shares naming one of ``courses`` (a course's students share at most a few each)."""

        def read(conn: Conn) -> list[Share]:
            rows = conn.execute(_SUMMARIES + " ORDER BY shared_at DESC")
            return [s for r in rows if set((s := _row(r, False)).courses) & courses]

        return await self.store.aread(read)

    async def get(self, share_id: str) -> Share | None:
        def read(conn: Conn) -> Share | None:
            row = conn.execute(_WHOLE, (share_id,)).fetchone()
            return _row(row, True) if row else None

        return await self.store.aread(read)

    async def delete(self, share_id: str) -> None:
        await self.store.awrite(
            lambda conn: conn.execute("DELETE FROM broker_shares WHERE id = ?", (share_id,))
        )


def taught_names(broker: Broker, caller: HubCaller) -> set[str]:
    return {c.name for c in broker.files.values() if broker.teaches(caller, c)}


class SharesHandler(BrokerHandler):
    """``POST api/shares`` (a student shares a conversation); ``GET api/shares`` (the
    student: their shares; an instructor: their courses' shares, ``?course=`` to narrow)."""

    async def post(self) -> None:
        b, caller = self.broker, self.caller
        try:
            conversation, title, note, text = parse_share(json.loads(self.body() or b"null"))
            _, policy = await b.policy_for(caller)
        except ShareError as e:
            self.fail(e.status, e.code, str(e))
            return
        except ValueError:
            self.fail(400, "invalid_share", "the body is not JSON")
            return
        except StateUnavailable as e:
            self.fail(503, "broker_unavailable", f"your courses cannot be read: {e}")
            return
        courses = [c.name for c in policy.courses]
        if not courses:
            await self.audit("conversation.shared", f"conversation:{conversation}", "no_course")
            self.fail(
                403, "no_course", "you are in no course, so there is no instructor to share with"
            )
            return
        try:
            share, again = await Shares(b.store).put(
                caller.name, courses, conversation, title, note, text
            )
        except ShareError as e:
            self.fail(e.status, e.code, str(e))
            return
        detail = {"share": share.id, "courses": courses, "title": title, "replaced": again,
                  "chars": len(text)}  # fmt: skip
        await self.audit("conversation.shared", f"conversation:{conversation}", "ok", detail)
        self.set_status(200 if again else 201)
        self.finish(share.summary())

    async def get(self) -> None:
        b, caller = self.broker, self.caller
        taught = taught_names(b, caller)
        if not taught:
            mine = await Shares(b.store).of_user(caller.name)
            self.finish({"shares": [s.summary() for s in mine]})
            return
        only = self.get_argument("course", "")
        if only and only not in taught:
            await self.audit("shares.read", f"course:{only}", "forbidden")
            self.fail(403, "forbidden", f"only instructors of {only} may read its shares")
            return
        shares = await Shares(b.store).in_courses({only} if only else taught)
        await self.audit("shares.read", "shares", "ok", {"count": len(shares)})
        self.finish({"shares": [s.summary() for s in shares]})


class ShareHandler(BrokerHandler):
    """``GET api/shares/<id>``: the transcript, for the course's instructors (audited
    ``conversation.read``) and the student; ``DELETE``: the student stops sharing."""

    async def _share(self, share_id: str, action: str) -> Share | None:
        share = await Shares(self.broker.store).get(share_id)
        if share is None:
            self.fail(404, "unknown_share", "no such shared conversation (no longer shared?)")
            return None
        mine = share.user == self.caller.name
        teaches = bool(set(share.courses) & taught_names(self.broker, self.caller))
        if not mine and not (teaches and action == "read"):
            target = f"conversation:{share.conversation}"
            await self.audit(f"conversation.{action}", target, "forbidden", {"share": share_id})
            who = (
                "the student who shared it" if action == "unshared" else "its student's instructors"
            )
            self.fail(403, "forbidden", f"only {who} may do this")
            return None
        return share

    async def get(self, share_id: str) -> None:
        share = await self._share(share_id, "read")
        if share is None:
            return
        if share.user != self.caller.name:
            detail = {"share": share.id, "student": share.user}
            await self.audit(
                "conversation.read", f"conversation:{share.conversation}", "ok", detail
            )
        self.finish({**share.summary(), "transcript": share.transcript})

    async def delete(self, share_id: str) -> None:
        share = await self._share(share_id, "unshared")
        if share is None:
            return
        await Shares(self.broker.store).delete(share_id)
        detail = {"share": share.id, "courses": list(share.courses)}
        await self.audit(
            "conversation.unshared", f"conversation:{share.conversation}", "ok", detail
        )
        self.set_status(204)
        self.finish()


def sharing_handlers(prefix: str, kw: dict[str, Any]) -> list[Any]:
    return [
        (prefix + "api/shares", SharesHandler, kw),
        (prefix + r"api/shares/([\w-]{1,64})", ShareHandler, kw),
    ]
