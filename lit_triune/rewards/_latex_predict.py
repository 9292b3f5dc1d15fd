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
  `\\in` or `=`, plus_minus_expr needs `\\pm`; checked on the ATN at start: no path through the rule avoids them);
- it runs to the end of the input (`TO_EOF`) and the input holds a token it can never match (`\\cup` for
  set_elements, read from the ATN);
- it takes a bracketed group whole (`AFTER_GROUP`: set_atom as an element, `^{...}` before `_`, `(x, y)` before
  `=`) and the token after the group's closing bracket cannot come there (`^`, `(`, `\\cdot` after `(a)` or `{a}`:
  nothing can follow an element but `,`, `;`, a closing bracket or the end). Every rule of the grammar is
  bracket-balanced (tests/rewards/test_latex_predict.py checks it on the ATN), so a group that starts with a
  bracket ends at the bracket that closes it;
- its second token cannot follow its first (`SECOND`: `x` in `x = ...` is followed by `^`, `_`, `=` or `\\in`);
- it holds one relation outside brackets and the input two (`ONE_RELATION`: `x = 1 = 2` is no
  set_elements_relation; checked on the ATN by the test).

Why the tree is the same: latex2sympy2's final parse is ANTLR's LL parse (SLL-first returns the same tree,
`_latex_parse.py`), and LL takes at each decision the smallest alternative with which the whole input parses
(a true ambiguity resolves to the minimum alternative). Every alternative below the predicted one is
impossible, so if the whole input then parses with no syntax error the predicted alternative was possible, hence
it is LL's. If it does not parse (a speculative prediction was wrong, or the input is not valid), the caller
parses again exactly as before (SLL-first, then LL): the verdict never depends on this module, only the cost.
Nothing is written to ANTLR's shared DFA by a prediction made here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# decision number -> (rule, names of the rules its alternatives invoke first, next tokens it is used for: None = all)
TARGETS: dict[int, tuple[str, tuple[str, ...], str | None]] = {
    0: ("math", ("set_elements_relation", "set_elements", "set_relation"), None),
    93: ("element", ("plus_minus_expr", "set_atom", "relation"), None),
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
REQUIRES = {(0, 1): ("IN", "ASSIGNMENT"), (93, 1): ("PLUS_MINUS",)}
# decisions whose alternatives end at the end of the input: one that cannot match a token of the input is out
TO_EOF = {0}
# (decision, alternative) -> (k, tokens): when the k-th token from here opens a bracketed group that the
# alternative takes whole, the token after the group is one of these ("follow": any token that can follow the rule)
AFTER_GROUP: dict[tuple[int, int], tuple[int, tuple[str, ...] | str]] = {
    (93, 2): (0, "follow"),  # set_atom: ( ... ), [ ... ), { ... } as a whole element
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
# decision -> next tokens for which ANTLR decides: a bar may open or close |x|, so `|x|` would end the product
ANTLR_DECIDES = {19: ("BAR", "VERT", "NORM"), 21: ("BAR", "VERT", "NORM")}
OPEN = ("L_PAREN", "L_PAREN_VISUAL", "L_GROUP", "L_BRACE", "L_BRACE_VISUAL", "L_BRACE_CMD", "L_BRACKET", "L_BRACK",
        "L_ANGLE", "L_FLOOR", "LL_CORNER", "L_CEIL", "UL_CORNER", "L_VERT")  # fmt: skip
CLOSE = ("R_PAREN", "R_PAREN_VISUAL", "R_GROUP", "R_BRACE", "R_BRACE_VISUAL", "R_BRACE_CMD", "R_BRACKET", "R_BRACK",
         "R_ANGLE", "R_FLOOR", "LR_CORNER", "R_CEIL", "UR_CORNER", "R_VERT")  # fmt: skip


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


def requires_one_of(atn: Any, rule_index: int, types: frozenset[int]) -> bool:
    """True when every path through the rule (sub-rules passable) matches a token of `types`."""
    from antlr4.atn.Transition import RuleTransition

    start, stop = atn.ruleToStartState[rule_index], atn.ruleToStopState[rule_index]
    todo, seen = [start], {start.stateNumber}
    while todo:
        state = todo.pop()
        if state is stop:
            return False
        for t in state.transitions:
            if isinstance(t, RuleTransition):
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
            rule = names.index(TARGETS[decision][1][alt - 1])
            if not requires_one_of(atn, rule, types):
                raise GrammarChanged(f"{names[rule]} does not need one of {REQUIRES[decision, alt]}")
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
        depth0_relations = {}  # relation tokens outside any bracket, per ONE_RELATION entry
        for key, rel in self.one_relation.items():
            depth, count = 0, 0
            for ty in types:
                depth += (ty in self.open) - (ty in self.close and depth > 0)
                count += depth == 0 and ty in rel
            depth0_relations[key] = count

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
            if depth0_relations.get((decision, alt), 1) > 1 and i == 0:
                return True  # two relations outside brackets: `x = 1 = 2` (only at the start of the input)
            for first, second in self.second.get((decision, alt), ()):
                if la in first and (types[i + 1] if i + 1 < n else -1) not in second:
                    return True  # the token after this one cannot come second in the alternative
            return False

        def predict(input_: Any, decision: int, outer: Any) -> int | None:
            target = TARGETS.get(decision)
            if target is None:
                return None
            i = input_.LT(1).tokenIndex
            la = types[i]
            if (target[2] == "open" and la not in self.open) or la in self.antlr_decides.get(decision, ()):
                return None
            for alt in range(1, len(self.looks[decision]) + 1):
                if not impossible(decision, alt, i, la, outer):
                    return alt
            return None

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
