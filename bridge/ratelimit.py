"""Per-user rate limits: token buckets, and the policy that applies them to routed commands.

Sans-IO: a command goes in, the same command (allowed), an error reply (``rate_limited`` with
``retry_after_ms``) or an ``Ignore`` comes out. Buckets are kept per user in a bounded LRU map;
forgetting a user only refills their bucket.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

from bridge.router import Command, Ignore, Reply, Rpc, Send, Topics, Typing, error_reply
from bridge.rpc import METHODS, Limit
from services.errors import RateLimited
from services.ids import Clock
from services.users.bots import BotDirectory


@dataclass(frozen=True, slots=True)
class Rate:
    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            msg = f"a rate needs per_second > 0 and burst >= 1, not {self.per_second}/{self.burst}"
            raise ValueError(msg)


class TokenBucket:
    """A token bucket per key: ``rate.per_second`` sustained, bursts of ``rate.burst``."""

    def __init__(self, clock: Clock, rate: Rate, *, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._rate = rate.per_second / 1000  # tokens per ms
        self._burst = float(rate.burst)
        self._buckets: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._max_keys = max_keys

    def take(self, key: str) -> int:
        """Take a token: 0 if there was one, else the ms until there will be (nothing taken)."""
        now = self._clock.now_ms()
        tokens, last = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + max(0, now - last) * self._rate)
        wait = 0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = max(1, math.ceil((1.0 - tokens) / self._rate))
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The per-user limits (``limits.*`` settings)."""

    messages: Rate = Rate(20, 50)
    rpcs: Rate = Rate(20, 50)
    searches: Rate = Rate(2, 5)
    push_registers: Rate = Rate(0.2, 10)
    profile_changes: Rate = Rate(0.2, 10)  # each tells every contact: a slow bucket of its own
    typing: Rate = Rate(2, 2)
    error_replies: Rate = Rate(5, 20)
    bot_messages: Rate = Rate(5, 20)  # a bot's messages, when the bot has no bucket of its own


_MAX_BOT_RATES = 10_000  # distinct bot buckets kept; past it they are dropped (refilled)


class Throttle:
    """Applies the per-user limits to routed commands (the uid is the command's publisher)."""

    def __init__(self, topics: Topics, clock: Clock, limits: RateLimits | None = None,
                 bots: BotDirectory | None = None) -> None:
        """``bots``: the bots this process knows; a bot's messages take its own bucket."""
        lim = limits or RateLimits()
        self._topics = topics
        self._clock = clock
        self._bots = bots
        self._bot_default = lim.bot_messages
        self._bot_buckets: dict[Rate, TokenBucket] = {}  # one per distinct bot rate, keyed by uid
        self._messages = TokenBucket(clock, lim.messages)
        self._rpcs = TokenBucket(clock, lim.rpcs)
        # Read markers are state, not requests: their own bucket (as large as the RPCs'), so an app
        # that opens with many history requests does not lose its read receipts.
        self._reads = TokenBucket(clock, lim.rpcs)
        # An edit or a reaction tells every member, as a message does: it costs a message too, so a
        # toggling flood in a large group is held to the sender's message rate.
        self._by_class = {Limit.SEARCH: TokenBucket(clock, lim.searches),
                          Limit.PUSH_REGISTER: TokenBucket(clock, lim.push_registers),
                          Limit.FAN_OUT: self._messages,
                          Limit.PROFILE: TokenBucket(clock, lim.profile_changes)}
        self._typing = TokenBucket(clock, lim.typing)
        self._errors = TokenBucket(clock, lim.error_replies)
        self.limited = 0  # commands refused by a limit
        self.silenced = 0  # error replies not sent because the user's error replies were over their limit

    def check(self, key: str, cmd: Command) -> Command:
        """``cmd`` if allowed, else what to do instead. ``key`` is the publisher's uid."""
        if isinstance(cmd, Send):
            wait = self.message_wait(key)
            if wait:
                over = RateLimited(f"too many messages: retry in {wait} ms", retry_after_ms=wait)
                return self._refuse(key, Reply(error_reply(self._topics, cmd.command.sender, over,
                                                           cid=cmd.command.cid), cmd.lane_key))
            return cmd
        if isinstance(cmd, Rpc):
            limit = METHODS[cmd.method].limit
            wait = (self._reads if limit == Limit.READ else self._rpcs).take(key)
            bucket = self._by_class.get(limit)
            if not wait and bucket is not None:
                wait = bucket.take(key)
            if wait:
                if not cmd.respond:
                    self.limited += 1
                    return Ignore(f"{cmd.method} from {cmd.uid} over its rate limit", cmd.lane_key)
                over = RateLimited(f"too many {cmd.method} requests: retry in {wait} ms", retry_after_ms=wait)
                return self._refuse(key, Reply(error_reply(self._topics, cmd.uid, over, rpc=True, rpc_id=cmd.id,
                                                           reply_to=cmd.reply_to), cmd.lane_key))
            return cmd
        if isinstance(cmd, Typing):
            if self._typing.take(key):
                self.limited += 1
                return Ignore(f"typing from {cmd.uid} over its rate limit", cmd.lane_key)  # a hint; dropping is harmless
            return cmd
        if isinstance(cmd, Reply):  # an error answer to bad input
            if self._errors.take(key):
                self.silenced += 1
                return Ignore(f"error replies to {key} over their limit", cmd.lane_key)
            return cmd
        return cmd

    def message_wait(self, uid: str) -> int:
        """Take a token of ``uid``'s message bucket (a bot's own): 0, or the ms until there is one
        (nothing taken). Also what the admin API's sends as a bot take."""
        bot = self._bots.limits(uid) if self._bots is not None else None
        if bot is None:
            return self._messages.take(uid)
        d = self._bot_default
        rate = Rate(bot.messages_per_s or d.per_second, bot.messages_burst or d.burst)
        bucket = self._bot_buckets.get(rate)
        if bucket is None:
            if len(self._bot_buckets) >= _MAX_BOT_RATES:
                self._bot_buckets.clear()
            bucket = self._bot_buckets[rate] = TokenBucket(self._clock, rate)
        return bucket.take(uid)

    def _refuse(self, key: str, reply: Reply) -> Command:
        self.limited += 1
        if self._errors.take(key):
            self.silenced += 1
            return Ignore(f"error replies to {key} over their limit", reply.lane_key)
        return reply
