"""What can stand directly inside a bracket group of latex2sympy2's grammar, read from its ATN, and the proofs
made from it: that an input cannot parse at all, or that an alternative cannot take a group.

Why: the first, predicted parse of `_latex_predict.py` is cheap even when it fails, but a failure sent the
input to ANTLR's SLL and then LL parse, and for an input the grammar rejects both build (SLL) or walk (LL)
full-context prediction to the end of the input: `(\\sin(\\ln(\\theta)))(\\tan(3) = 0.5 = 2)` cost a fresh
worker ~100 ms CPU, `(e^{\\log_{3}(7)})(\\log_{3}(x = 0.5))` ~190 ms, only to raise the syntax error that
math-verify then catches. And a valid input on which a speculative prediction was wrong (`{5 \\choose 2}`,
`(1 \\pm 2)`) paid the SLL parse (12-50 ms).

Grammar facts (checked by tests/rewards/test_latex_groups.py on the ATN):

- every rule is bracket-balanced (tests/rewards/test_latex_predict.py), so each ATN state of a rule has one
  bracket depth, a valid input's brackets pair up (one class: `[0, 1)` is a pair), and a group of the input
  (an opening token to the one that closes it) is matched by one opening transition of one rule and the
  closing transition that returns that rule to the depth it opened at;
- so the tokens directly inside the group (at depth 1 from its opening token: nested groups' own brackets
  count, their contents do not) are among `inside(t)` of that opening transition `t`: the tokens its rule
  matches at that depth before the close, and what the sub-rules invoked there match at their own depth 0
  (`depth0`);
- the opening transition is one that can come right after the previous token's transition (or first in the
  input): an epsilon closure over the ATN, entering rules and leaving them by every caller's follow state
  (SLL's global follow, a superset of the real continuations).

So an input is not in the grammar (LL would raise its syntax error) when its brackets do not pair up, or when
for some group no opening transition that can follow the previous token allows the group's direct contents:
`\\log_{3}(x = 0.5)` (a function's argument is an `expr`, which holds no relation outside brackets),
`e^{x = 7}`, `\\sqrt{2 \\pm 1}`. Nothing here is a heuristic: each table is an over-approximation (more tokens
allowed, more transitions reachable), so a valid input is never called invalid; `cannot_parse` may miss an
invalid input, which then parses as before.
"""

from __future__ import annotations

from typing import Any

START = -2  # "previous token" of the first token of the input (EOF is -1)


class GroupsUnsupported(RuntimeError):
    """The ATN holds a transition these tables cannot read (another latex2sympy2 / ANTLR version)."""


def _values(interval_set: Any) -> list[int]:
    return [v for r in interval_set.intervals for v in r]


class Groups:
    """Bracket-group facts of one parser class, read once from its ATN."""

    def __init__(self, parser_cls: Any, open_names: tuple[str, ...], close_names: tuple[str, ...]) -> None:
        from antlr4.atn.Transition import AtomTransition, RuleTransition, SetTransition

        self.atn = atn = parser_cls.atn
        self.open = frozenset(getattr(parser_cls, n) for n in open_names)
        self.close = frozenset(getattr(parser_cls, n) for n in close_names)
        self.labels: dict[Any, frozenset[int]] = {}  # terminal transition -> its token types
        self._source: dict[Any, Any] = {}  # terminal transition -> the state it leaves
        for state in atn.states:
            for t in state.transitions if state is not None else ():
                if isinstance(t, RuleTransition) or t.isEpsilon:
                    continue
                if type(t) not in (
                    AtomTransition,
                    SetTransition,
                ):  # a NotSet or wildcard label would read wrong
                    raise GroupsUnsupported(f"{type(t).__name__} in the parser's ATN")
                self.labels[t] = frozenset(_values(t.label))
                self._source[t] = state
        self.callers: dict[int, list[Any]] = {}  # rule index -> follow states of its invocations
        for state in atn.states:
            for t in state.transitions if state is not None else ():
                if isinstance(t, RuleTransition):
                    self.callers.setdefault(t.target.ruleIndex, []).append(t.followState)
        self.depth = self._depths()
        self.depth0 = self._depth0()
        self.bar, self.bar_inside, self.eval_next = self._bars(parser_cls)
        self._inside: dict[Any, frozenset[int]] = {}
        self._after_close: dict[Any, frozenset[int]] = {}
        self._after: dict[
            tuple[int, ...], tuple[frozenset[int], dict[int, list[tuple[frozenset[int], frozenset[int]]]]]
        ] = {}

    # ------------------------------------------------------------------ tables
    def _step(self, t: Any) -> int:
        label = self.labels.get(t, frozenset())
        return 1 if label & self.open else -1 if label & self.close else 0

    def _depths(self) -> dict[int, int]:
        """Bracket depth of every ATN state inside its rule (one per state: the rules are balanced)."""
        from antlr4.atn.Transition import RuleTransition

        depth: dict[int, int] = {}
        for rule, start in enumerate(self.atn.ruleToStartState):
            depth[start.stateNumber] = 0
            todo = [start]
            while todo:
                state = todo.pop()
                d = depth[state.stateNumber]
                if state is self.atn.ruleToStopState[rule]:
                    continue  # its transitions are the global follow links to the callers
                for t in state.transitions:
                    nxt = t.followState if isinstance(t, RuleTransition) else t.target
                    got = d + (0 if isinstance(t, RuleTransition) else self._step(t))
                    if nxt.stateNumber in depth:
                        if depth[nxt.stateNumber] != got:
                            raise GroupsUnsupported(f"rule {rule} is not bracket-balanced")
                    else:
                        depth[nxt.stateNumber] = got
                        todo.append(nxt)
        return depth

    def _bars(self, parser_cls: Any) -> tuple[int, frozenset[int], frozenset[int]]:
        """`|`, what may stand between the two bars of an abs_group at their depth, and the tokens that may
        follow the `|` that starts an eval_at (the grammar's only other use of it)."""
        from antlr4.atn.ATNState import RuleStopState
        from antlr4.atn.Transition import RuleTransition

        bar, names = parser_cls.BAR, parser_cls.ruleNames
        uses = [(s, t) for t, label in self.labels.items() if bar in label for s in [self._source[t]]]
        if {names[s.ruleIndex] for s, _ in uses} != {"abs_group", "eval_at"}:
            raise GroupsUnsupported("'|' is matched outside abs_group and eval_at")
        inside: set[int] = set()
        after_eval: set[int] = set()
        for state, t in uses:
            if names[state.ruleIndex] == "eval_at":
                after_eval |= set().union(
                    *(self.labels[u] for _, u in self.first([t.target], leave_rules=False) or [])
                )
                continue
            level, todo, seen = self.depth[state.stateNumber], [t.target], {t.target.stateNumber}
            while todo:  # from an abs_group's bar to the next bar of that rule
                s = todo.pop()
                if isinstance(s, RuleStopState):
                    continue  # past a closing bar: its transitions are the global follow links
                for u in s.transitions:
                    if isinstance(u, RuleTransition):
                        if self.depth[s.stateNumber] == level:
                            inside |= self.depth0[u.target.ruleIndex]
                        nxt = u.followState
                    else:
                        nxt = u.target
                        if u in self.labels:
                            if bar in self.labels[u]:
                                continue
                            if self._token_depth(s, u) == level:
                                inside |= self.labels[u]
                    if nxt.stateNumber not in seen:
                        seen.add(nxt.stateNumber)
                        todo.append(nxt)
        return bar, frozenset(inside), frozenset(after_eval)

    def _token_depth(self, state: Any, t: Any) -> int:
        """Depth of the token a terminal transition matches: an opening token stands at the depth before it,
        a closing one at the depth after it."""
        return min(self.depth[state.stateNumber], self.depth[t.target.stateNumber])

    def _depth0(self) -> list[frozenset[int]]:
        """Per rule: the tokens it (or a sub-rule invoked at its depth 0) matches at its own depth 0."""
        from antlr4.atn.ATNState import RuleStopState
        from antlr4.atn.Transition import RuleTransition

        n = len(self.atn.ruleToStartState)
        direct: list[set[int]] = [set() for _ in range(n)]
        invoked: list[set[int]] = [set() for _ in range(n)]
        for state in self.atn.states:
            if state is None or isinstance(state, RuleStopState):
                continue
            for t in state.transitions:
                if isinstance(t, RuleTransition):
                    if self.depth[state.stateNumber] == 0:
                        invoked[state.ruleIndex].add(t.target.ruleIndex)
                elif t in self.labels and self._token_depth(state, t) == 0:
                    direct[state.ruleIndex] |= self.labels[t]
        out = [set(d) for d in direct]
        changed = True
        while changed:  # a fixpoint over the invocation graph (left recursion included)
            changed = False
            for rule in range(n):
                before = len(out[rule])
                for sub in invoked[rule]:
                    out[rule] |= out[sub]
                changed |= len(out[rule]) != before
        return [frozenset(s) for s in out]

    def inside(self, state: Any, t: Any) -> frozenset[int]:
        """Tokens that can stand directly inside the group that the opening transition `t` (from `state`)
        opens: its rule's tokens at that depth up to the close, and sub-rules' depth-0 tokens there."""
        from antlr4.atn.Transition import RuleTransition

        got = self._inside.get(t)
        if got is not None:
            return got
        level = self.depth[state.stateNumber] + 1
        out: set[int] = set()
        closed: set[Any] = set()  # states right after this group's closing bracket
        todo, seen = [t.target], {t.target.stateNumber}
        while todo:
            s = todo.pop()
            for u in s.transitions:
                if isinstance(u, RuleTransition):
                    if self.depth[s.stateNumber] == level:
                        out |= self.depth0[u.target.ruleIndex]
                    nxt = u.followState
                else:
                    nxt = u.target
                    if u in self.labels:
                        if self._token_depth(s, u) == level:
                            out |= self.labels[u]
                        if self.depth[nxt.stateNumber] < level:
                            closed.add(nxt)
                            continue  # the closing bracket of this group
                if nxt.stateNumber not in seen:
                    seen.add(nxt.stateNumber)
                    todo.append(nxt)
        self._inside[t] = got = frozenset(out)
        pairs = self.first(list(closed)) or []
        self._after_close[t] = frozenset().union(*(self.labels[u] for _, u in pairs))
        return got

    def after_close(self, state: Any, t: Any) -> frozenset[int]:
        """Token types that can come right after the closing bracket of the group `t` opens (EOF is -1)."""
        self.inside(state, t)
        return self._after_close[t]

    def first_opens(self, states: list[Any], *, leave_rules: bool = True) -> list[tuple[Any, Any]] | None:
        """(state, opening transition) pairs reachable from `states` by epsilon moves before any token (`first`)."""
        pairs = self.first(states, leave_rules=leave_rules)
        return None if pairs is None else [(s, t) for s, t in pairs if self.labels[t] & self.open]

    def first(self, states: list[Any], *, leave_rules: bool = True) -> list[tuple[Any, Any]] | None:
        """(state, terminal transition) pairs reachable from `states` by epsilon moves before any token.

        Sub-rules are entered and left to the state after their invocation. Past the stop state of the rule the
        closure started in, it continues at every caller's follow state (`leave_rules`: SLL's global follow), or,
        without it, returns None (the next token may belong to whatever follows)."""
        from antlr4.atn.ATNState import RuleStopState
        from antlr4.atn.Transition import RuleTransition

        out: list[tuple[Any, Any]] = []
        todo: list[tuple[Any, tuple[Any, ...]]] = [(s, ()) for s in states]
        seen = {(s.stateNumber, ()) for s in states}
        while todo:
            s, stack = todo.pop()
            nxts: list[tuple[Any, tuple[Any, ...]]] = []
            if isinstance(s, RuleStopState):
                if stack:
                    nxts.append((stack[-1], stack[:-1]))
                elif not leave_rules:
                    return None
                else:
                    nxts += [(f, ()) for f in self.callers.get(s.ruleIndex, [])]
            else:
                for u in s.transitions:
                    if isinstance(u, RuleTransition):
                        nxts.append((u.target, (*stack, u.followState)))
                    elif u.isEpsilon:
                        nxts.append((u.target, stack))
                    else:
                        out.append((s, u))
            for nxt, st in nxts:
                key = (nxt.stateNumber, tuple(f.stateNumber for f in st))
                if key not in seen:
                    seen.add(key)
                    todo.append((nxt, st))
        return out

    def _after_states(self, context: tuple[int, ...]) -> list[Any]:
        """ATN states the parse can be in right after matching the token types of `context` in a row (START
        first: from the start of the input); SLL's global follow where a rule ends."""
        if context[0] == START:
            states, context = [self.atn.ruleToStartState[0]], context[1:]
        else:
            states, context = (
                [t.target for t, label in self.labels.items() if context[0] in label],
                context[1:],
            )
        for ty in context:
            states = list({t.target for _, t in self.first(states) or [] if ty in self.labels[t]})
        return states

    def allowed_after(
        self, *context: int
    ) -> tuple[frozenset[int], dict[int, list[tuple[frozenset[int], frozenset[int]]]]]:
        """(token types that can come next, opening type -> [(what its group may hold directly, what may come
        right after its close)], one pair per kind of group) right after the token types of `context` (one or
        two; START: the start of the input). An opening type missing from the dict cannot come there."""
        got = self._after.get(context)
        if got is not None:
            return got
        pairs = self.first(self._after_states(context)) or []
        table: dict[int, set[tuple[frozenset[int], frozenset[int]]]] = {}
        for state, t in pairs:
            opens = self.labels[t] & self.open
            if opens:
                kind = (self.inside(state, t), self.after_close(state, t))
                for ty in opens:
                    table.setdefault(ty, set()).add(kind)
        nxt = frozenset().union(*(self.labels[t] for _, t in pairs))
        self._after[context] = got = (
            nxt,
            {ty: sorted(v, key=lambda k: -len(k[0])) for ty, v in table.items()},
        )
        return got

    def warm_up(self, types: list[int]) -> None:
        """Fill the one-token tables for every token type in `types` and the start (a forkserver does this once,
        so a worker's first proof costs no ATN walk)."""
        for ty in [START, *types]:
            self.allowed_after(ty)

    # ------------------------------------------------------------------ proofs on an input
    def cannot_parse(self, types: list[int]) -> str | None:
        """Why the token types of a whole input (ending with EOF) cannot be parsed by the grammar, or None when
        this cannot prove it. Checked: each token can follow the one before it; the brackets pair up; for
        each group, some kind of group that can open after the token before it (and after the two before it)
        may hold what stands directly inside it and be followed by the token after it."""
        stack: list[tuple[int, set[int]]] = []  # (index of the opening token, types directly inside so far)
        groups: list[tuple[int, int, set[int]]] = []  # (opening index, closing index, types directly inside)
        bars = [_Bars()]  # per bracket level, innermost last
        for i, ty in enumerate(types):
            prev = types[i - 1] if i else START
            if ty not in self.allowed_after(prev)[0]:  # EOF (-1) too: `x =` ends too soon
                return f"token {i} cannot follow the token before it"
            if ty in self.close:
                if not stack:
                    return f"a closing bracket at token {i} with none open"
                start, inner = stack.pop()
                groups.append((start, i, inner))
                if not bars.pop().fits(self.bar_inside):
                    return f"the group at token {start} holds, between two bars, what no |...| can hold"
            if stack:
                stack[-1][1].add(ty)
            bars[-1].see(ty, types[i + 1] if i + 1 < len(types) else -1, self.bar, self.eval_next)
            if ty in self.open:
                stack.append((i, set()))
                bars.append(_Bars())
        if stack:
            return f"{len(stack)} unclosed brackets"
        if not bars[0].fits(self.bar_inside):
            return "the input holds, between two bars, what no |...| can hold"
        for width in (1, 2):  # the one-token tables first: a forkserver filled them all (`warm_up`)
            for start, end, inner in groups:
                context = tuple(types[k] if k >= 0 else START for k in range(start - width, start))
                if width == 2 and start == 0:
                    continue  # START alone: done with width 1
                kinds = self.allowed_after(*context)[1].get(types[start])
                if kinds is None:
                    return f"the bracket at token {start} cannot come after the tokens before it"
                after = types[end + 1] if end + 1 < len(types) else -1
                if not any(inner <= inside and after in follow for inside, follow in kinds):
                    return f"no group that can open at token {start} holds what it holds and is followed by what follows"
        return None

    def contents(self, types: list[int], i: int, end: int) -> frozenset[int]:
        """Token types directly inside the group from `types[i]` (opening) to `types[end]` (its close)."""
        out, depth = set(), 0
        for ty in types[i + 1 : end]:
            depth -= ty in self.close
            if depth == 0:
                out.add(ty)
            depth += ty in self.open
        return frozenset(out)


class _Bars:
    """The bars `|` at one bracket level of an input. When none of them can start an eval_at (none is followed by
    what may follow that `|`), every one is an abs_group's, and abs_groups at one level nest or follow each other;
    so a token with an odd number of bars before it at its level stands inside an abs_group, at its depth."""

    def __init__(self) -> None:
        self.count, self.maybe_eval, self.odd = 0, False, set()

    def see(self, ty: int, nxt: int, bar: int, eval_next: frozenset[int]) -> None:
        if ty == bar:
            self.count += 1
            self.maybe_eval |= nxt in eval_next
        elif self.count % 2:
            self.odd.add(ty)

    def fits(self, inside: frozenset[int]) -> bool:
        return self.maybe_eval or self.odd <= inside
