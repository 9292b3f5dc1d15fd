"""Cheap predictions for the LaTeX grammar's long-lookahead decisions, used in a first, speculative parse.

Why: after the SLL-first change (`_latex_parse.py`) what a completion still paid was ANTLR building DFA states
for a token path it had not seen. A few decisions of latex2sympy2's grammar look ahead across a whole bracketed
group, often to the end of the input: `math` (set_elements_relation | set_elements | set_relation) and `element`
(plus_minus_expr | set_atom | relation) cannot tell `(a)(b)` or `{a}^{x}` from a tuple or set, nor `a + b` from
`a \\pm b`, before the end; `comp` cannot tell `{a}` from `{a \\choose b}` before the closing brace; `\\sin(`
and `e^` inside `func` look through their argument. Each new DFA state costs a few ms of closure over a
config set that grows with the nesting, so a first-seen nested answer (`{\\ln(10) \\cdot e^{\\frac{1}{2}}}^{x}`)
cost a fresh worker 65-260 ms CPU, and no warm-up grid covers the nestings an answer can have.

What: for those decisions, and the loops of the operator rules (one more operand, or stop), the first parse
predicts the *smallest alternative not shown impossible* (`TARGETS`). An alternative is impossible when

- it cannot start with the next token (ANTLR's LL(1) set of the alternative, from the ATN);
- its precedence predicate fails (a loop of a left-recursive rule: evaluated exactly as the generated code does);
- it needs a token that does not occur in the rest of the input (`REQUIRES`: set_elements_relation needs
  `\\in` or `=`, plus_minus_expr needs `\\pm`, an atom's `^...` then `_...` needs a `_`: `x^2 + 1` is no
  `supexpr subexpr`; checked on the ATN at start: no path through the alternative avoids them);
- it runs to the end of the input (`TO_EOF`) and the input holds a token it can never match (`\\cup` for
  set_elements, read from the ATN);
- it takes a bracketed group whole (`AFTER_GROUP`: set_atom as an element, `^{...}` before `_`, `(x, y)` before
  `=`) and the token after the group's closing bracket cannot come there (`^`, `(`, `\\cdot` after `(a)` or `{a}`:
  nothing can follow an element but `,`, `;`, a closing bracket or the end). Every rule of the grammar is
  bracket-balanced (tests/rewards/test_latex_predict.py checks it on the ATN), so a group that starts with a
  bracket ends at the bracket that closes it;
- its second token cannot follow its first (`SECOND`: `x` in `x = ...` is followed by `^`, `_`, `=` or `\\in`);
- it holds one relation outside brackets and the input two (`ONE_RELATION`: `x = 1 = 2` is no
  set_elements_relation; checked on the ATN by the test);
- it starts with a rule and a separator the rule never holds outside brackets, and what stands outside
  brackets before the input's first such separator is not all the rule's (`PREFIX`: `x^{2} + 3 = 7` is no
  `atom_expr_list =`, 66 ms of SLL and LL in a fresh worker before);
- the next token opens a bracketed group, and no group the alternative can start with can hold what stands
  directly inside this one and be followed by the token after it (`_latex_groups.py`: `{5 \\choose 2}` is
  no `group`, whose braces hold an `expr`; `(1 \\pm 2)` starts no plus_minus_expr).

Why the tree is the same: latex2sympy2's final parse is ANTLR's LL parse (SLL-first returns the same tree,
`_latex_parse.py`), and LL takes at each decision the smallest alternative with which the whole input parses
(a true ambiguity resolves to the minimum alternative). Every alternative below the predicted one is
impossible, so if the whole input then parses with no syntax error the predicted alternative was possible, hence
it is LL's. When every alternative of a decision is impossible the attempt stops there (`NoAlternative`): it
could not succeed whatever was chosen. If it does not parse (a speculative prediction was wrong, or the input is
not valid), the caller parses again exactly as before (SLL-first, then LL), unless `_latex_groups.py` proves the
input outside the grammar: the verdict never depends on this module, only the cost. Nothing is written to
ANTLR's shared DFA by a prediction made here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lit_triune.rewards._latex_groups import Groups

# decision number -> (rule, names of the rules its alternatives invoke first, next tokens it is used for: None = all)
TARGETS: dict[int, tuple[str, tuple[str, ...], str | None]] = {
    0: ("math", ("set_elements_relation", "set_elements", "set_relation"), None),
    93: ("element", ("plus_minus_expr", "set_atom", "relation"), None),
    92: ("element_no_relation", ("plus_minus_expr", "set_atom", "expr"), None),  # after `x =`
    35: (
        "comp",
        (
            "group",
            "formatting_group",
            "norm_group",
            "abs_group",
            "dot_product",
            "floor_group",
            "ceil_group",
            "func",
            "atom",
            "frac",
            "binom",
            "matrix",
            "det",
        ),
        "open",
    ),  # fmt: skip
    56: ("func", ("", "func_single_arg_noparens"), None),  # `\sin(`: ( func_single_arg ) | noparens
    70: ("func", ("supexpr", ""), None),  # `e^`: the exponential's supexpr, or a power of e
    43: (
        "atom_expr",
        ("supexpr", "subexpr", "subexpr", "supexpr", ""),
        None,
    ),  # sup sub | sub sup | sub | sup | -
    # the loops of the operator rules: one more operand (the precedence predicate decides, as in ANTLR) or stop
    15: ("relation", ("", ""), None),
    16: ("additive", ("", ""), None),
    17: ("mp", ("", ""), None),
    18: ("mp_nofunc", ("", ""), None),
    19: ("unary", ("postfix", ""), None),  # postfix+ : implicit products `(a)(b)`
    21: ("unary_nofunc", ("postfix_nofunc", ""), None),
    31: ("exp", ("", ""), None),
}
# (decision, alternative) -> tokens one of which the alternative needs in the rest of the input
REQUIRES = {
    (0, 1): ("IN", "ASSIGNMENT"),
    (93, 1): ("PLUS_MINUS",),
    (92, 1): ("PLUS_MINUS",),
    (43, 1): ("UNDERSCORE",),
    (43, 2): ("CARET",),
}
# decisions whose alternatives end at the end of the input: one that cannot match a token of the input is out
TO_EOF = {0}
# (decision, alternative) -> (k, tokens): when the k-th token from here opens a bracketed group that the
# alternative takes whole, the token after the group is one of these ("follow": any token that can follow the rule)
AFTER_GROUP: dict[tuple[int, int], tuple[int, tuple[str, ...] | str]] = {
    (93, 2): (0, "follow"),  # set_atom: ( ... ), [ ... ), { ... } as a whole element
    (92, 2): (0, "follow"),
    (0, 1): (0, ("IN", "ASSIGNMENT")),  # atom_expr_list (IN | ASSIGNMENT): `(a, b) = ...`
    (43, 1): (1, ("UNDERSCORE",)),  # supexpr subexpr: ^{...} then _
    (43, 2): (1, ("CARET",)),  # subexpr supexpr: _{...} then ^
}
# (decision, alternative) -> (first tokens, second tokens): after one of the first, the next is one of the second
_HEADS = ("LETTER_NO_E", "GREEK_CMD", "OTHER_SYMBOL_CMD", "ACCENT")  # what an atom_expr starts with
SECOND: dict[tuple[int, int], list[tuple[tuple[str, ...], tuple[str, ...]]]] = {
    # atom_expr_list: `x^...`, `x_...`, `x =`, `x \in` or `(x, ...)`
    (0, 1): [(_HEADS, ("CARET", "UNDERSCORE", "IN", "ASSIGNMENT")), (("L_PAREN",), _HEADS)],
}
# (decision, alternative) -> relation tokens of which the alternative holds exactly one outside brackets
# (set_elements_relation: `x = <elements without a relation>`, so `x = 1 = 2` is not one)
ONE_RELATION = {(0, 1): ("IN", "NOTIN", "ASSIGNMENT", "EQUAL", "APPROX", "LT", "LTE", "GT", "GTE", "UNEQUAL")}
# (decision, alternative) -> (rule, separators): the alternative is that rule, then one of the separators, which
# the rule never matches outside brackets; so the tokens outside brackets before the first separator there are
# the rule's (set_elements_relation = atom_expr_list (IN | ASSIGNMENT) ...: `x^2 - 5x + 6 = 0` is none)
PREFIX = {(0, 1): ("atom_expr_list", ("IN", "ASSIGNMENT"))}
# decision -> next tokens for which ANTLR decides: a bar may open or close |x|, so `|x|` would end the product
ANTLR_DECIDES = {19: ("BAR", "VERT", "NORM"), 21: ("BAR", "VERT", "NORM")}
# ... except at unary's loop (`postfix+`) before a `|`, where the parser's rule stack settles it (`_bar`):
# another postfix opens an abs_group, and stopping leaves the `|` to an abs_group it is inside or to a func's
# eval_at / next factor (`\int x |_{0}^{1}`); `|` occurs nowhere else in the grammar (checked at start)
BAR_LOOP = 19
BAR_RULES = ("abs_group", "eval_at")
OPEN = ("L_PAREN", "L_PAREN_VISUAL", "L_GROUP", "L_BRACE", "L_BRACE_VISUAL", "L_BRACE_CMD", "L_BRACKET", "L_BRACK",
        "L_ANGLE", "L_FLOOR", "LL_CORNER", "L_CEIL", "UL_CORNER", "L_VERT")  # fmt: skip
CLOSE = ("R_PAREN", "R_PAREN_VISUAL", "R_GROUP", "R_BRACE", "R_BRACE_VISUAL", "R_BRACE_CMD", "R_BRACKET", "R_BRACK",
         "R_ANGLE", "R_FLOOR", "LR_CORNER", "R_CEIL", "UR_CORNER", "R_VERT")  # fmt: skip


class NoAlternative(Exception):  # noqa: N818 - ends an attempt like a syntax error
    """Every alternative of a decision is impossible at this point: the attempt cannot succeed."""


class GrammarChanged(RuntimeError):
    """The parser's decisions are not the ones `TARGETS` describes (another latex2sympy2 version)."""


def _types(parser_cls: Any, names: tuple[str, ...]) -> frozenset[int]:
    return frozenset(getattr(parser_cls, n) for n in names)


def _invoked_rule(atn: Any, rule_names: list[str], state: Any) -> str:
    """The rule the alternative starting at `state` invokes first ("" if it matches a token first)."""
    from antlr4.atn.Transition import RuleTransition

    seen = set()
    while state.stateNumber not in seen:
        seen.add(state.stateNumber)
        ts = state.transitions
        if len(ts) != 1:
            return ""
        t = ts[0]
        if isinstance(t, RuleTransition):
            return rule_names[t.target.ruleIndex]
        if not t.isEpsilon:
            return ""
        state = t.target
    return ""


def requires_one_of(
    atn: Any, rule_index: int, types: frozenset[int], start: Any = None, _open: frozenset[int] = frozenset()
) -> bool:
    """True when every path through the rule (from `start`, default its start state) matches a token of `types`,
    itself or in a sub-rule of which every path does (a sub-rule being checked further up counts as not)."""
    from antlr4.atn.Transition import RuleTransition

    start = atn.ruleToStartState[rule_index] if start is None else start
    stop = atn.ruleToStopState[rule_index]
    todo, seen = [start], {start.stateNumber}
    while todo:
        state = todo.pop()
        if state is stop:
            return False
        for t in state.transitions:
            if isinstance(t, RuleTransition):
                sub = t.target.ruleIndex
                if sub not in _open and requires_one_of(atn, sub, types, _open=_open | {rule_index}):
                    continue  # this path matches one inside the sub-rule
                nxt = t.followState
            elif t.isEpsilon:
                nxt = t.target
            else:
                label = t.label
                if label is None or all(tok in types for tok in _values(label)):
                    continue  # matches only tokens of `types` (or none)
                nxt = t.target
            if nxt.stateNumber not in seen:
                seen.add(nxt.stateNumber)
                todo.append(nxt)
    return True


def _values(interval_set: Any) -> list[int]:
    return [v for r in interval_set.intervals for v in r]


def follow(atn: Any, rule_index: int, _seen: set[int] | None = None) -> set[int]:
    """Token types that can follow the rule anywhere in the grammar (SLL's global FOLLOW; EOF is -1)."""
    from antlr4.atn.Transition import RuleTransition
    from antlr4.Token import Token

    seen = set() if _seen is None else _seen
    if rule_index in seen:
        return set()
    seen.add(rule_index)
    out: set[int] = set()
    target = atn.ruleToStartState[rule_index]
    for state in atn.states:
        for t in state.transitions if state is not None else ():
            if isinstance(t, RuleTransition) and t.target is target:
                look = set(_values(atn.nextTokens(t.followState)))
                if Token.EPSILON in look:
                    look.discard(Token.EPSILON)
                    look |= follow(atn, t.followState.ruleIndex, seen)
                out |= look
    if rule_index == 0:
        out.add(Token.EOF)
    return out


def rule_tokens(atn: Any, rule_index: int) -> set[int]:
    """Every token type the rule can match, in itself or in the rules it invokes."""
    from antlr4.atn.ATNState import RuleStopState
    from antlr4.atn.Transition import RuleTransition

    out: set[int] = set()
    todo, seen = [atn.ruleToStartState[rule_index]], set()
    while todo:
        state = todo.pop()
        if state.stateNumber in seen or isinstance(state, RuleStopState):  # not into the global follow links
            continue
        seen.add(state.stateNumber)
        for t in state.transitions:
            if isinstance(t, RuleTransition):
                todo += [t.target, t.followState]
                continue
            if not t.isEpsilon and t.label is not None:
                out |= set(_values(t.label))
            todo.append(t.target)
    return out


def _precedence_branches(state: Any) -> list[tuple[int, set[int]]]:
    """(precedence, first tokens) of each precedence predicate reached from `state` by epsilon moves (the body of a
    left-recursive rule's loop starts with one)."""
    from antlr4.atn.ATNState import RuleStopState
    from antlr4.atn.Transition import PrecedencePredicateTransition, RuleTransition

    out, todo, seen = [], [state], set()
    while todo:
        s = todo.pop()
        if s.stateNumber in seen or isinstance(s, RuleStopState):  # not into the rule's global follow links
            continue
        seen.add(s.stateNumber)
        for t in s.transitions:
            if isinstance(t, PrecedencePredicateTransition):
                out.append((t.precedence, set(_values(s.atn.nextTokens(t.target)))))
            elif t.isEpsilon and not isinstance(t, RuleTransition):
                todo.append(t.target)
    return out


class Predictor:
    """The grammar facts `predict` needs, read once from the ATN of latex2sympy2's parser."""

    def __init__(self, parser_cls: Any) -> None:
        from antlr4.Token import Token

        atn, names = parser_cls.atn, parser_cls.ruleNames
        self.looks: dict[int, list[set[int]]] = {}
        self.precedence: dict[tuple[int, int], list[tuple[int, set[int]]]] = {}
        self.to_eof: dict[tuple[int, int], set[int]] = {}
        for decision, (rule, alts, _) in TARGETS.items():
            state = atn.decisionToState[decision]
            got = tuple(_invoked_rule(atn, names, t.target) for t in state.transitions)
            if names[state.ruleIndex] != rule or got != alts:
                raise GrammarChanged(
                    f"decision {decision}: {names[state.ruleIndex]} {got}, expected {rule} {alts}"
                )
            self.looks[decision] = [set(_values(atn.nextTokens(t.target))) for t in state.transitions]
            for alt, t in enumerate(state.transitions, 1):
                branches = _precedence_branches(t.target)
                if branches:
                    self.precedence[decision, alt] = branches
                if decision in TO_EOF:
                    self.to_eof[decision, alt] = rule_tokens(atn, names.index(alts[alt - 1])) | {Token.EOF}
        self.requires = {key: _types(parser_cls, toks) for key, toks in REQUIRES.items()}
        for (decision, alt), types in self.requires.items():
            state = atn.decisionToState[decision]
            if not requires_one_of(atn, state.ruleIndex, types, start=state.transitions[alt - 1].target):
                raise GrammarChanged(
                    f"decision {decision} alternative {alt} does not need one of {REQUIRES[decision, alt]}"
                )
        self.after_group: dict[tuple[int, int], tuple[int, set[int]]] = {}
        for key, (k, toks) in AFTER_GROUP.items():
            allowed = (
                follow(atn, atn.decisionToState[key[0]].ruleIndex)
                if toks == "follow"
                else set(_types(parser_cls, toks))
            )
            self.after_group[key] = (k, allowed)
        self.second = {key: [(_types(parser_cls, a), _types(parser_cls, b)) for a, b in pairs]
                       for key, pairs in SECOND.items()}  # fmt: skip
        self.antlr_decides = {d: _types(parser_cls, toks) for d, toks in ANTLR_DECIDES.items()}
        self.one_relation = {key: _types(parser_cls, toks) for key, toks in ONE_RELATION.items()}
        self.open, self.close = _types(parser_cls, OPEN), _types(parser_cls, CLOSE)
        self.epsilon = Token.EPSILON
        self.bar = parser_cls.BAR
        bar_rules = {names[s.ruleIndex] for s in atn.states if s is not None for t in s.transitions
                     if not t.isEpsilon and t.label is not None and self.bar in _values(t.label)}  # fmt: skip
        if bar_rules != set(BAR_RULES) or TARGETS[BAR_LOOP][:2] != ("unary", ("postfix", "")):
            raise GrammarChanged(f"'|' is matched in {sorted(bar_rules)}, expected {BAR_RULES}")
        self.abs_ctx, self.func_ctx = parser_cls.Abs_groupContext, parser_cls.FuncContext
        self.groups = Groups(parser_cls, OPEN, CLOSE)
        self.prefix: dict[tuple[int, int], tuple[frozenset[int], frozenset[int]]] = {}
        for (decision, alt), (rule, seps) in PREFIX.items():
            alt_rule = names.index(TARGETS[decision][1][alt - 1])
            separators, tokens = _types(parser_cls, seps), self.groups.depth0[names.index(rule)]
            if _invoked_rule(atn, names, atn.ruleToStartState[alt_rule]) != rule or separators & tokens:
                raise GrammarChanged(f"{names[alt_rule]} does not start with {rule} and then one of {seps}")
            self.prefix[decision, alt] = (tokens, separators)
        # (decision, alt) -> opening token -> [(what its group may hold directly, what may follow its close)] per
        # kind of group the alternative can start with; None: the alternative can be empty, so its first token
        # may be the caller's (no claim)
        Kinds = dict[int, list[tuple[frozenset[int], frozenset[int]]]]
        self.inside_alt: dict[tuple[int, int], Kinds | None] = {}
        for decision in TARGETS:
            for alt, t in enumerate(atn.decisionToState[decision].transitions, 1):
                opens = self.groups.first_opens([t.target], leave_rules=False)
                table: dict[int, set[tuple[frozenset[int], frozenset[int]]]] = {}
                for state, u in opens or []:
                    kind = (self.groups.inside(state, u), self.groups.after_close(state, u))
                    for ty in self.groups.labels[u] & self.open:
                        table.setdefault(ty, set()).add(kind)
                self.inside_alt[decision, alt] = (
                    None if opens is None else {ty: list(v) for ty, v in table.items()}
                )

    def for_parser(self, parser: Any) -> Callable[[Any, int, Any], int | None]:
        """`predict(input, decision, outer_context)` for one parse: an alternative, or None (ANTLR decides)."""
        stream = parser._input
        stream.fill()  # lexes the whole input (a lexer error raises here, and the caller parses as before)
        types = [tok.type for tok in stream.tokens]  # ends with EOF
        n = len(types)
        last: dict[int, int] = {}
        match: dict[int, int] = {}
        stack: list[int] = []
        for i, ty in enumerate(types):
            last[ty] = i
            if ty in self.open:
                stack.append(i)
            elif ty in self.close and stack:
                match[stack.pop()] = i
        present = set(types)
        # opening token index -> token types directly inside its group
        contents: dict[int, frozenset[int]] = {}
        depth0_relations = {}  # relation tokens outside any bracket, per ONE_RELATION entry
        for key, rel in self.one_relation.items():
            depth, count = 0, 0
            for ty in types:
                depth += (ty in self.open) - (ty in self.close and depth > 0)
                count += depth == 0 and ty in rel
            depth0_relations[key] = count
        prefix_fits = {}  # per PREFIX entry: do the outside-bracket tokens before the first separator fit the rule?
        for key, (tokens, separators) in self.prefix.items():
            depth, fits, seen = 0, False, set()
            for ty in types:
                if depth == 0 and ty in separators:
                    fits = seen <= tokens
                    break
                depth -= ty in self.close and depth > 0
                if depth == 0:
                    seen.add(ty)
                depth += ty in self.open
            prefix_fits[key] = fits

        def impossible(decision: int, alt: int, i: int, la: int, outer: Any) -> bool:
            look = self.looks[decision][alt - 1]
            if la not in look and self.epsilon not in look:
                return True  # cannot start with this token
            need = self.requires.get((decision, alt))
            if need is not None and all(last.get(ty, -1) < i for ty in need):
                return True  # needs a token the rest of the input lacks
            matchable = self.to_eof.get((decision, alt))
            if matchable is not None and not present <= matchable:
                return True  # runs to the end of the input, which holds a token it cannot match
            branches = self.precedence.get((decision, alt))
            if branches is not None and not any(la in ts and parser.precpred(outer, p) for p, ts in branches):
                return True  # the precedence predicate fails (as it would in the generated code)
            group = self.after_group.get((decision, alt))
            if group is not None:
                k, allowed = group
                if i + k < n and types[i + k] in self.open and i + k in match:
                    end = match[i + k] + 1
                    if (types[end] if end < n else -1) not in allowed:
                        return True  # the group is followed by what cannot follow it in this alternative
            opens = self.inside_alt.get((decision, alt))
            if opens is not None and la in self.open and i in match:
                kinds = opens.get(la)
                if kinds is not None:
                    if i not in contents:
                        contents[i] = self.groups.contents(types, i, match[i])
                    after = types[match[i] + 1] if match[i] + 1 < n else -1
                    if not any(contents[i] <= inside and after in follow for inside, follow in kinds):
                        return (
                            True  # no group the alternative can open here holds this or is followed by that
                        )
            if i == 0 and not prefix_fits.get((decision, alt), True):
                return True  # what stands before the separator (outside brackets) is not the rule's
            if depth0_relations.get((decision, alt), 1) > 1 and i == 0:
                return True  # two relations outside brackets: `x = 1 = 2` (only at the start of the input)
            for first, second in self.second.get((decision, alt), ()):
                if la in first and (types[i + 1] if i + 1 < n else -1) not in second:
                    return True  # the token after this one cannot come second in the alternative
            return False

        bars_after = [0] * (n + 1)  # BAR tokens after index i
        for k in range(n - 1, -1, -1):
            bars_after[k] = bars_after[k + 1] + (types[k + 1] == self.bar if k + 1 < n else 0)

        def bar(i: int, outer: Any) -> int | None:
            """At unary's loop before a `|`: 1 (another factor, `|` opens an abs_group) when stopping is
            impossible, 2 (stop) when another factor is, else None."""
            pending, in_func, ctx = 0, False, outer
            while ctx is not None:  # the parser's rule stack: what this `|` could close
                if (
                    isinstance(ctx, self.abs_ctx)
                    and ctx.getChildCount()
                    and getattr(ctx.getChild(0), "symbol", None) is not None
                ):
                    pending += ctx.getChild(0).symbol.type == self.bar
                in_func |= isinstance(ctx, self.func_ctx)
                ctx = ctx.parentCtx
            if not pending and not in_func:
                return 1  # nothing this `|` could close or follow: it opens |...|
            if bars_after[i] < pending + 1:
                return 2  # too few `|` left to close a new |...| and every pending one
            return None

        def predict(input_: Any, decision: int, outer: Any) -> int | None:
            target = TARGETS.get(decision)
            if target is None:
                return None
            i = input_.LT(1).tokenIndex
            la = types[i]
            if decision == BAR_LOOP and la == self.bar:
                return bar(i, outer)
            if (target[2] == "open" and la not in self.open) or la in self.antlr_decides.get(decision, ()):
                return None
            for alt in range(1, len(self.looks[decision]) + 1):
                if not impossible(decision, alt, i, la, outer):
                    return alt
            # no alternative can parse the rest from here: this attempt fails whatever ANTLR would predict (its
            # full-context search to find that out cost 25-30 ms for `\tan(x = 0.5)`)
            raise NoAlternative(f"decision {decision} at token {i}: every alternative is impossible")

        return predict


_predictor: Predictor | None = None


def predictor() -> Predictor:
    global _predictor
    if _predictor is None:
        from latex2sympy2_extended.latex2sympy2 import PSParser

        _predictor = Predictor(PSParser)
    return _predictor


def install_on(parser: Any) -> None:
    """Make `parser` (one parse) use `predict` for the target decisions and ANTLR's prediction elsewhere."""
    predict = predictor().for_parser(parser)
    interp = parser._interp
    adaptive = interp.adaptivePredict

    def adaptivePredict(input_: Any, decision: int, outer: Any) -> int:  # noqa: N802 - ANTLR's name
        alt = predict(input_, decision, outer)
        return adaptive(input_, decision, outer) if alt is None else alt

    interp.adaptivePredict = adaptivePredict
