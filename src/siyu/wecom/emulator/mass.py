"""Mass messages (企业群发), Moments and customer reactions: what happens after the API call.

add_msg_template only creates a task (reference §3.10); nothing reaches a customer until the sender
confirms it in the client. Here each sender confirms on their own with `confirm_probability`, after a
delay drawn from `confirm_delay` (or never, until reminded, or told to through the control plane).
On confirmation each recipient gets a send_result status:

* 1 sent;
* 2 not a friend — the customer no longer follows the sender (a group: dismissed, or the sender left it);
* 3 quota — the receive cap of the customer (or group chat) is used up. The cap counts only confirmed
  enterprise sends (create_type 0) in the corp's time zone (`timezone`, default China time):
  `days_in_month` 1 a day and the month's number of days a month (the default), `weekly_7` 7 per
  ISO week, `daily_1` 1 a day, `monthly_4` 4 per calendar month.

A sent message to a customer may bring reactions, each decided with its own chance
`reaction_chance(base, fatigue, n) = min(1, base × (1 + fatigue × (n − 1)))`, where n ≥ 1 is the number of
enterprise messages the customer received in the 7 days up to and including this one: a reply (a share
`opt_out_share` of them TD / 退订), a complaint, or deleting the sender — which goes through the actors,
so siyu gets the real del_follow_user callback. Replies and complaints are only recorded (WeCom shows
neither to the API); the control plane lists them.

Every decision uses a generator seeded from (corpid, msgid, userid or external_userid), so a run is
reproducible however often the clock is polled. Time moves through one event queue (confirmations,
Moments publications, reactions) that `advance` applies up to now: every API handler calls it, and
`MassRunner` does on a background thread, performing the deletions (callbacks) outside the state lock.
"""

from __future__ import annotations

import calendar
import heapq
import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from siyu.wecom.emulator.state import (
    CAP_MODES,
    DAY,
    REACTION_KINDS,
    EmulatorError,
    EmulatorState,
    MassSender,
    MassSettings,
    MassTask,
    MomentSender,
    MomentTask,
    Reaction,
)

if TYPE_CHECKING:
    from siyu.wecom.emulator.actors import Actors

log = logging.getLogger(__name__)

NOT_SENT, SENT, NOT_FRIEND, QUOTA = 0, 1, 2, 3
INVALID_MSGID = 41047
NO_RECIPIENTS = 41048
DISPATCHING = 41063
# WeCom documents the limit (3 reminds per msgid in 24 h) but no errcode; this one is the emulator's choice
REMIND_LIMIT = 45047
REMINDS_PER_DAY = 3
OPT_OUT_REPLIES = ("TD", "退订", "td", "退订，别再发了")
REPLIES = ("好的，谢谢", "收到", "多少钱？", "有优惠吗？", "哪家门店有货？", "已下单", "👍", "周末去店里看看")
RECEIPT_HORIZON = 40 * DAY


# --- ids and randomness -----------------------------------------------------------------------------


def _rng(state: EmulatorState, *parts: object) -> random.Random:
    return random.Random(":".join([state.corp.corpid, *map(str, parts)]))


def _schedule(state: EmulatorState, due: float, kind: str, key: str, userid: str) -> int:
    state.mass_seq += 1
    heapq.heappush(state.mass_events, (due, state.mass_seq, kind, key, userid))
    return state.mass_seq


def _confirm_time(state: EmulatorState, key: str, userid: str, start: float, draw: int) -> float | None:
    """When the member acts on the task on their own; None when they leave it (until reminded)."""
    settings = state.mass_settings
    rng = _rng(state, "confirm", key, userid, draw)
    if rng.random() >= settings.confirm_probability:
        return None
    low, high = settings.confirm_delay
    return start + rng.uniform(low, high)


# --- mass messages --------------------------------------------------------------------------------


def create_mass_task(
    state: EmulatorState,
    *,
    chat_type: str,
    sender: str,
    recipients: list[str],
    text: str,
    attachments: list[dict[str, Any]],
    allow_select: bool = False,
    create_type: int = 0,
) -> MassTask:
    """Store a task for `sender`; an enterprise task waits for the sender, a personal one (type 1) goes at once."""
    with state.lock:
        now = state.clock()
        state.mass_seq += 1
        member = MassSender(sender, recipients)
        task = MassTask(
            msgid="msg" + state.ids.chars(27),
            chat_type=chat_type,
            creator=sender,
            create_type=create_type,
            created_at=now,
            text=text,
            attachments=attachments,
            allow_select=allow_select,
            senders={sender: member},
            seq=state.mass_seq,
        )
        state.mass_tasks[task.msgid] = task
        if create_type == 1:
            deliver(state, task, member, now)
        else:
            _plan_confirmation(state, task, member, now)
        return task


def _plan_confirmation(state: EmulatorState, task: MassTask, member: MassSender, start: float) -> None:
    due = _confirm_time(state, task.msgid, member.userid, start, member.draws)
    member.draws += 1
    member.due_at = due
    member.decision = "waiting" if due is not None else "ignored"
    if due is not None:
        _schedule(state, due, "confirm", task.msgid, member.userid)


def require_task(state: EmulatorState, msgid: object) -> MassTask:
    if not msgid or not isinstance(msgid, str):
        raise EmulatorError(41046, "missing msgid")
    task = state.mass_tasks.get(msgid)
    if task is None:
        raise EmulatorError(INVALID_MSGID, f"invalid msgid: {msgid}")
    return task


def deliver(state: EmulatorState, task: MassTask, member: MassSender, at: float) -> None:
    """The sender confirmed at `at`: every recipient gets status 1, 2 or 3, and the sent ones may react."""
    when = int(at)
    member.decision, member.due_at, member.send_time = "sent", None, when
    for recipient in member.recipients:
        status = _recipient_status(state, task, member.userid, recipient, when)
        member.results[recipient] = (status, when if status == SENT else 0)
        if status != SENT:
            continue
        if task.create_type == 0:
            _record_receipt(state, recipient, when)
        if task.chat_type == "single":
            _plan_reactions(state, task, member.userid, recipient, when)


def _recipient_status(state: EmulatorState, task: MassTask, userid: str, recipient: str, when: int) -> int:
    if task.chat_type == "single":
        if state.follow(userid, recipient) is None:
            return NOT_FRIEND
    else:
        group = state.groups.get(recipient)
        if group is None or all(m.userid != userid for m in group.members):
            return NOT_FRIEND
    if task.create_type == 0 and cap_reached(state, recipient, when):
        return QUOTA
    return SENT


def _record_receipt(state: EmulatorState, recipient: str, when: int) -> None:
    kept = [t for t in state.mass_receipts.get(recipient, ()) if t > when - RECEIPT_HORIZON]
    state.mass_receipts[recipient] = [*kept, when]


def confirm(state: EmulatorState, msgid: str, userid: str, *, decline: bool = False) -> MassSender:
    """The control plane's "the sender acts now": send at once, or decline (the task stays unsent)."""
    with state.lock:
        advance(state)
        task = require_task(state, msgid)
        member = task.senders.get(userid)
        if member is None:
            raise EmulatorError(60111, f"{userid} is not a sender of {msgid}")
        if member.decision == "sent":
            raise EmulatorError(40058, f"{userid} already sent {msgid}")
        if task.cancelled:
            raise EmulatorError(40058, f"{msgid} was cancelled")
        if decline:
            member.decision, member.due_at = "declined", None
        else:
            deliver(state, task, member, state.clock())
        return member


def remind(state: EmulatorState, msgid: object) -> None:
    """remind_groupmsg_send: ≤ 3 per msgid in 24 h; senders who left the task draw again (confirm_probability)."""
    task = require_task(state, msgid)
    now = state.now()
    recent = [t for t in task.reminds if t > now - DAY]
    if len(recent) >= REMINDS_PER_DAY:
        raise EmulatorError(REMIND_LIMIT, f"remind count out of limit: at most {REMINDS_PER_DAY} per msgid in 24 hours")
    task.reminds = [*recent, now]
    if task.cancelled:
        return
    for member in task.senders.values():
        if member.decision == "ignored":
            _plan_confirmation(state, task, member, state.clock())


def cancel(state: EmulatorState, msgid: object) -> None:
    """cancel_groupmsg_send: senders who have not confirmed never send; what was sent stays sent."""
    require_task(state, msgid).cancelled = True


def check_dispatched(state: EmulatorState, task: MassTask) -> None:
    """41063 while the task is still being dispatched to its senders (`dispatch_seconds` after creation)."""
    if state.clock() < task.created_at + state.mass_settings.dispatch_seconds:
        raise EmulatorError(DISPATCHING, "group msg is being dispatched, please try again later")


def task_json(task: MassTask) -> dict[str, Any]:
    """A task for the control plane: content, cancellation, and per sender the decision and status counts."""
    senders = []
    for member in task.senders.values():
        counts = Counter(status for status, _ in member.results.values())
        counts[NOT_SENT] += len(member.recipients) - len(member.results)
        senders.append(
            {
                "userid": member.userid,
                "decision": member.decision,
                "due_at": member.due_at,
                "send_time": member.send_time,
                "recipients": len(member.recipients),
                "statuses": {str(k): v for k, v in sorted(counts.items()) if v},
            }
        )
    return {
        "msgid": task.msgid,
        "chat_type": task.chat_type,
        "creator": task.creator,
        "create_type": task.create_type,
        "created_at": task.created_at,
        "text": task.text,
        "attachments": task.attachments,
        "cancelled": task.cancelled,
        "reminds": task.reminds,
        "senders": senders,
    }


# --- receive caps ---------------------------------------------------------------------------------


def _limits(mode: str, local: datetime) -> list[tuple[str, int]]:
    days = calendar.monthrange(local.year, local.month)[1]
    return {
        "days_in_month": [("day", 1), ("month", days)],
        "weekly_7": [("week", 7)],
        "daily_1": [("day", 1)],
        "monthly_4": [("month", 4)],
    }[mode]


def _period(kind: str, local: datetime) -> tuple[int, ...]:
    if kind == "day":
        return (local.year, local.month, local.day)
    if kind == "week":
        iso = local.isocalendar()
        return (iso.year, iso.week)
    return (local.year, local.month)


def cap_reached(state: EmulatorState, recipient: str, when: int) -> bool:
    """Whether the customer / group chat has used up its receive cap for the period containing `when`."""
    zone = ZoneInfo(state.mass_settings.timezone)
    local = datetime.fromtimestamp(when, zone)
    received = [datetime.fromtimestamp(t, zone) for t in state.mass_receipts.get(recipient, ())]
    for kind, limit in _limits(state.mass_settings.cap_mode, local):
        period = _period(kind, local)
        if sum(1 for r in received if _period(kind, r) == period) >= limit:
            return True
    return False


# --- reactions ------------------------------------------------------------------------------------


def reaction_chance(base: float, fatigue: float, received_7d: int) -> float:
    """min(1, base × (1 + fatigue × (n − 1))), n ≥ 1 the messages received in the last 7 days, this one included."""
    n = max(1, received_7d)
    return min(1.0, max(0.0, base * (1 + fatigue * (n - 1))))


def _plan_reactions(state: EmulatorState, task: MassTask, userid: str, external_userid: str, when: int) -> None:
    settings = state.mass_settings
    received = sum(1 for t in state.mass_receipts.get(external_userid, ()) if when - 7 * DAY < t <= when)
    rng = _rng(state, "react", task.msgid, external_userid)
    delay = rng.uniform(*settings.reaction_delay)
    for kind in REACTION_KINDS:
        if rng.random() >= reaction_chance(getattr(settings, kind), settings.fatigue, received):
            continue
        reaction = Reaction(0, kind, external_userid, userid, task.msgid, when)
        if kind == "reply":
            reaction.opt_out = rng.random() < settings.opt_out_share
            reaction.text = rng.choice(OPT_OUT_REPLIES if reaction.opt_out else REPLIES)
        # one delay per message, and the queue's tie-break keeps reply → complaint → delete in order
        seq = _schedule(state, when + delay, "react", "", "")
        state.mass_pending_reactions[seq] = reaction


def record_reaction(state: EmulatorState, reaction: Reaction) -> Reaction:
    with state.lock:
        reaction.id = len(state.reactions) + 1
        state.reactions.append(reaction)
        return reaction


def reactions_since(
    state: EmulatorState, since: int = 0, kinds: Iterable[str] | None = None, limit: int = 1000
) -> tuple[list[Reaction], int]:
    """Reactions with id > since (oldest first), optionally of some kinds; and the cursor to pass next."""
    wanted = set(kinds) if kinds else set(REACTION_KINDS)
    with state.lock:
        later = state.reactions[max(0, since) :]
    page: list[Reaction] = []
    cursor = max(0, since)
    for reaction in later:
        if len(page) >= limit:
            break
        cursor = reaction.id
        if reaction.kind in wanted:
            page.append(reaction)
    return page, cursor


# --- Moments ---------------------------------------------------------------------------------------


def create_moment_task(
    state: EmulatorState,
    *,
    text: str,
    attachments: list[dict[str, Any]],
    users: list[str],
    departments: list[int],
    tags: list[str],
) -> MomentTask:
    """An add_moment_task job: senders are the valid users and departments' members (default: everyone)."""
    with state.lock:
        now = state.clock()
        invalid_users = [u for u in users if u not in state.employees or state.employees[u].status != 1]
        invalid_departments = [d for d in departments if d not in state.departments]
        senders = _moment_senders(state, users, departments, invalid_users, invalid_departments)
        task = MomentTask(
            jobid="job" + state.ids.chars(29),
            moment_id="mom" + state.ids.chars(29),
            created_at=now,
            ready_at=now + state.mass_settings.moment_job_seconds,
            text=text,
            attachments=attachments,
            tag_list=[t for t in tags if t in state.tags],
            senders={u: MomentSender(u) for u in senders},
            invalid_users=invalid_users,
            invalid_departments=invalid_departments,
            invalid_tags=[t for t in tags if t not in state.tags],
        )
        state.moment_tasks[task.jobid] = task
        if senders:
            state.moments[task.moment_id] = task
        for member in task.senders.values():
            due = _confirm_time(state, task.moment_id, member.userid, task.ready_at, 0)
            member.due_at, member.decision = due, "waiting" if due is not None else "ignored"
            if due is not None:
                _schedule(state, due, "publish", task.moment_id, member.userid)
        return task


def _moment_senders(
    state: EmulatorState, users: list[str], departments: list[int], bad_users: list[str], bad_depts: list[int]
) -> list[str]:
    if not users and not departments:
        return state.follow_user_ids()
    valid_depts = [d for d in departments if d not in bad_depts]
    candidates = [*[u for u in users if u not in bad_users], *state.department_members(valid_depts)]
    return [u for u in dict.fromkeys(candidates) if state.employees[u].status == 1]


def moment_job_status(state: EmulatorState, task: MomentTask) -> int:
    """1 started, 2 in progress (the second half of `moment_job_seconds`), 3 done."""
    now = state.clock()
    if now >= task.ready_at:
        return 3
    return 2 if now >= (task.created_at + task.ready_at) / 2 else 1


def require_moment(state: EmulatorState, moment_id: object) -> MomentTask:
    task = state.moments.get(moment_id) if isinstance(moment_id, str) else None
    if task is None or state.clock() < task.ready_at:
        raise EmulatorError(40058, f"invalid moment_id: {moment_id}")
    return task


def confirm_moment(state: EmulatorState, moment_id: str, userid: str, *, decline: bool = False) -> MomentSender:
    """The control plane's "the sender publishes (or declines) the moment now"."""
    with state.lock:
        advance(state)
        task = require_moment(state, moment_id)
        member = task.senders.get(userid)
        if member is None:
            raise EmulatorError(60111, f"{userid} is not a sender of {moment_id}")
        if member.decision == "published":
            raise EmulatorError(40058, f"{userid} already published {moment_id}")
        if decline:
            member.decision, member.due_at = "declined", None
        else:
            member.decision, member.due_at, member.publish_time = "published", None, state.now()
        return member


# --- the clock ------------------------------------------------------------------------------------


def _on_confirm(state: EmulatorState, msgid: str, userid: str, due: float) -> None:
    task = state.mass_tasks.get(msgid)
    member = task.senders.get(userid) if task else None
    if task is None or member is None or task.cancelled or member.decision != "waiting" or member.due_at != due:
        return
    deliver(state, task, member, due)


def _on_publish(state: EmulatorState, moment_id: str, userid: str, due: float) -> None:
    task = state.moments.get(moment_id)
    member = task.senders.get(userid) if task else None
    if member is None or member.decision != "waiting" or member.due_at != due:
        return
    member.decision, member.due_at, member.publish_time = "published", None, int(due)


_HANDLERS: dict[str, Callable[[EmulatorState, str, str, float], None]] = {
    "confirm": _on_confirm,
    "publish": _on_publish,
}


def advance(state: EmulatorState, now: float | None = None) -> int:
    """Apply every queued event due by now (confirmations, publications, reactions); returns how many ran.

    Deletions are only queued (`state.mass_deletions`): they send a callback, which must happen
    outside the state lock — `MassRunner.run_due` performs them.
    """
    with state.lock:
        moment = state.clock() if now is None else now
        ran = 0
        while state.mass_events and state.mass_events[0][0] <= moment:
            due, seq, kind, key, userid = heapq.heappop(state.mass_events)
            ran += 1
            if kind != "react":
                _HANDLERS[kind](state, key, userid, due)
                continue
            reaction = state.mass_pending_reactions.pop(seq)
            reaction.at = int(due)
            if reaction.kind == "delete":
                state.mass_deletions.append(reaction)
            else:
                record_reaction(state, reaction)
        return ran


class MassRunner:
    """Moves mass messages along with the clock: every `interval` seconds on a daemon thread, or on demand."""

    def __init__(self, state: EmulatorState, actors: Actors, interval: float = 0.25) -> None:
        self.state, self.actors, self.interval = state, actors, interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self) -> dict[str, int]:
        """Apply what is due now and perform the deletions it produced (their callbacks are sent before return)."""
        with self._lock:
            with self.state.lock:
                ran = advance(self.state)
                deletions, self.state.mass_deletions = self.state.mass_deletions, []
            for reaction in deletions:
                self._delete(reaction)
            return {"events": ran, "deletions": len(deletions)}

    def _delete(self, reaction: Reaction) -> None:
        try:
            self.actors.customer_delete_employee(reaction.userid, reaction.external_userid)
        except EmulatorError:  # the follow went some other way in the meantime
            reaction.delivered = False
        record_reaction(self.state, reaction)

    def start(self) -> MassRunner:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="emulator-mass-clock")
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_due()
            except Exception:  # a bad event must not stop the clock for the rest
                log.exception("emulator mass-message clock")


# --- settings ---------------------------------------------------------------------------------------

_RANGES = ("confirm_delay", "reaction_delay")
_CHANCES = ("confirm_probability", "reply", "complaint", "delete", "opt_out_share")
_SECONDS = ("dispatch_seconds", "moment_job_seconds", "fatigue")


def settings_json(settings: MassSettings) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()}


def update_settings(state: EmulatorState, changes: Mapping[str, Any]) -> MassSettings:
    """Apply the given fields (the rest stay); ValueError names the first bad one."""
    known = {f.name for f in fields(MassSettings)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise ValueError(f"unknown settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    parsed = {name: _parse_setting(name, value) for name, value in changes.items()}
    with state.lock:
        for name, value in parsed.items():
            setattr(state.mass_settings, name, value)
        return state.mass_settings


def _parse_setting(name: str, value: Any) -> Any:
    if name in _RANGES:
        return _parse_range(name, value)
    if name == "cap_mode":
        if value not in CAP_MODES:
            raise ValueError(f"cap_mode must be one of {', '.join(CAP_MODES)}")
        return value
    if name == "timezone":
        try:
            ZoneInfo(str(value))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone: {value!r}") from None
        return str(value)
    number = _number(name, value)
    if name in _CHANCES and not 0 <= number <= 1:
        raise ValueError(f"{name} must be between 0 and 1")
    if name in _SECONDS and number < 0:
        raise ValueError(f"{name} must not be negative")
    return number


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    return float(value)


def _parse_range(name: str, value: Any) -> tuple[float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value, value]
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"{name} must be [min, max] seconds (or one number)")
    low, high = (_number(name, v) for v in value)
    if not 0 <= low <= high:
        raise ValueError(f"{name} must satisfy 0 <= min <= max")
    return (low, high)
