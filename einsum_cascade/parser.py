"""A hand-written parser for the cascade language (`docs/cascade-language.md`).

Text is read one statement a line: a regular-expression tokenizer, then a recursive-descent parser
per line, then whole-cascade checks (arity, definitions, initial values, cycles). Every error is a
`CascadeError` with file, line and column; nothing is ever evaluated as Python.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import sympy

from einsum_cascade.ast import (
    FUNCTIONS_1,
    FUNCTIONS_2,
    REDUCTIONS,
    Access,
    Binary,
    Call,
    Comparison,
    Node,
    Number,
    Reduce,
    Size,
    Unary,
    Var,
    size_symbol,
    value_vars,
    var_symbol,
    walk,
)
from einsum_cascade.errors import CascadeError
from einsum_cascade.ir import Cascade, Einsum, Rank, TensorDecl

KEYWORDS = {"cascade", "rank", "param", "input", "output"}
RESERVED = KEYWORDS | {"where", "and", "inf"}
COMPARISONS = {"<", "<=", ">", ">=", "==", "!="}

_TOKEN = re.compile(
    r"(?P<ws>[ \t\r\f\v]+)"
    r"|(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op><=|>=|==|!=|[-+*/()\[\],:=<>])"
)


@dataclass(frozen=True)
class Token:
    kind: str  # "number", "name", "op", "end"
    text: str
    line: int
    col: int


def tokenize_line(text: str, line: int, file: str) -> list[Token]:
    """Tokens of one line (comment already removed), ending with an "end" token."""
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise CascadeError(f"unexpected character {text[pos]!r}", file, line, pos + 1)
        if match.lastgroup != "ws":
            tokens.append(Token(match.lastgroup, match.group(), line, pos + 1))
        pos = match.end()
    tokens.append(Token("end", "", line, len(text) + 1))
    return tokens


class _Declarations:
    """Names declared so far: ranks, variables, sizes, params."""

    def __init__(self) -> None:
        self.ranks: dict[str, Rank] = {}
        self.var_rank: dict[str, str] = {}
        self.params: list[str] = []

    @property
    def sizes(self) -> set[str]:
        return set(self.var_rank.values()) | set(self.ranks)

    def taken(self, name: str) -> bool:
        return name in self.sizes or name in self.var_rank or name in self.params


class _LineParser:
    """Recursive-descent parser over the tokens of one statement."""

    def __init__(self, tokens: list[Token], file: str, decls: _Declarations):
        self.tokens = tokens
        self.pos = 0
        self.file = file
        self.decls = decls

    # -- token helpers -----------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def error(self, message: str, token: Token | None = None) -> CascadeError:
        token = token or self.tok
        return CascadeError(message, self.file, token.line, token.col)

    def advance(self) -> Token:
        token = self.tok
        if token.kind != "end":
            self.pos += 1
        return token

    def at(self, text: str) -> bool:
        return self.tok.kind in ("op", "name") and self.tok.text == text

    def expect(self, text: str) -> Token:
        if not self.at(text):
            found = self.tok.text or "end of line"
            raise self.error(f"expected {text!r}, found {found!r}")
        return self.advance()

    def expect_name(self, what: str) -> Token:
        if self.tok.kind != "name":
            found = self.tok.text or "end of line"
            raise self.error(f"expected {what}, found {found!r}")
        return self.advance()

    def expect_end(self) -> None:
        if self.tok.kind != "end":
            raise self.error(f"unexpected {self.tok.text!r}")

    # -- value expressions -------------------------------------------------------------------
    def expression(self) -> Node:
        node = self.term()
        while self.at("+") or self.at("-"):
            op = self.advance().text
            node = Binary(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.at("*") or self.at("/"):
            op = self.advance().text
            node = Binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.at("-"):
            self.advance()
            return Unary("-", self.unary())
        if self.at("+"):
            self.advance()
            return self.unary()
        return self.primary()

    def primary(self) -> Node:
        token = self.tok
        if token.kind == "number":
            self.advance()
            return Number(float(token.text))
        if self.at("("):
            self.advance()
            node = self.expression()
            self.expect(")")
            return node
        if token.kind != "name":
            found = token.text or "end of line"
            raise self.error(f"expected an expression, found {found!r}")
        if token.text in ("where", "and"):
            raise self.error(f"expected an expression, found {token.text!r}")
        self.advance()
        if self.at("["):
            return self.access(token)
        if self.at("("):
            return self.call(token)
        return self.name_value(token)

    def name_value(self, token: Token) -> Node:
        name = token.text
        if name == "inf":
            return Number(math.inf)
        if name in self.decls.var_rank:
            return Var(name)
        if name in self.decls.sizes or name in self.decls.params:
            return Size(name)
        if name.islower():
            raise self.error(f"rank variable {name!r} is not declared", token)
        raise self.error(f"unknown name {name!r} (not a size, param or rank variable)", token)

    def access(self, token: Token) -> Access:
        if token.text in RESERVED:
            raise self.error(f"{token.text!r} is a keyword, not a tensor", token)
        self.expect("[")
        indices = [self.index_expression()]
        while self.at(","):
            self.advance()
            indices.append(self.index_expression())
        self.expect("]")
        return Access(token.text, tuple(indices), token.line, token.col)

    def reduction_vars(self) -> list[Token] | None:
        """If the tokens after '(' read `v, w :`, the variable tokens; else None."""
        offset = 1
        names = []
        while True:
            tok = self.peek(offset)
            if tok.kind != "name":
                return None
            names.append(tok)
            nxt = self.peek(offset + 1)
            if nxt.kind == "op" and nxt.text == ":":
                return names
            if not (nxt.kind == "op" and nxt.text == ","):
                return None
            offset += 2

    def call(self, token: Token) -> Node:
        name = token.text
        if name in REDUCTIONS:
            var_tokens = self.reduction_vars()
            if var_tokens is not None:
                for var_token in var_tokens:
                    if var_token.text not in self.decls.var_rank:
                        raise self.error(
                            f"rank variable {var_token.text!r} is not declared", var_token
                        )
                self.pos += 2 * len(var_tokens) + 1  # '(' v (',' v)* ':'
                body = self.expression()
                self.expect(")")
                return Reduce(name, tuple(t.text for t in var_tokens), body)
            if name in ("sum", "prod"):
                raise self.error(f"{name}(...) needs its variables: {name}(v: EXPR)", token)
        if name not in FUNCTIONS_1 and name not in FUNCTIONS_2:
            raise self.error(f"unknown function {name!r}", token)
        self.expect("(")
        args = [self.expression()]
        while self.at(","):
            self.advance()
            args.append(self.expression())
        self.expect(")")
        wanted = 2 if name in FUNCTIONS_2 else 1
        if len(args) != wanted:
            raise self.error(f"{name} takes {wanted} argument(s), got {len(args)}", token)
        return Call(name, tuple(args))

    # -- index and condition expressions ------------------------------------------------------
    def index_expression(self) -> sympy.Expr:
        start = self.tok
        node = self.expression()
        expr = self.to_sympy(node, start)
        if not self.is_affine(expr):
            raise self.error("index is not affine in the rank variables", start)
        return expr

    def to_sympy(self, node: Node, token: Token) -> sympy.Expr:
        if isinstance(node, Number):
            if math.isinf(node.value):
                raise self.error("inf is not allowed in an index or condition", token)
            value = node.value
            return sympy.Integer(int(value)) if value == int(value) else sympy.Float(value)
        if isinstance(node, Var):
            return var_symbol(node.name)
        if isinstance(node, Size):
            return size_symbol(node.name)
        if isinstance(node, Unary):
            return -self.to_sympy(node.operand, token)
        if isinstance(node, Binary) and node.op in "+-*":
            left = self.to_sympy(node.left, token)
            right = self.to_sympy(node.right, token)
            return {"+": left + right, "-": left - right, "*": left * right}[node.op]
        raise self.error(
            "only rank variables, sizes, params and numbers with + - * may appear here", token
        )

    def is_affine(self, expr: sympy.Expr) -> bool:
        variables = [var_symbol(v) for v in self.decls.var_rank]
        present = [v for v in variables if v in expr.free_symbols]
        if not present:
            return True
        try:
            return sympy.Poly(sympy.expand(expr), *present).total_degree() <= 1
        except sympy.PolynomialError:
            return False

    def condition(self) -> tuple[Comparison, ...]:
        comparisons = [self.comparison()]
        while self.at("and"):
            self.advance()
            comparisons.append(self.comparison())
        return tuple(comparisons)

    def comparison(self) -> Comparison:
        start = self.tok
        left = self.expression()
        if not (self.tok.kind == "op" and self.tok.text in COMPARISONS):
            found = self.tok.text or "end of line"
            raise self.error(f"expected a comparison (< <= > >= == !=), found {found!r}")
        op = self.advance().text
        right_start = self.tok
        right = self.expression()
        for node, token in ((left, start), (right, right_start)):
            try:
                expr = self.to_sympy(node, token)
            except CascadeError:
                raise self.error("where condition is not affine: it may only compare affine "
                                 "expressions of rank variables, sizes and params", token) from None
            if not self.is_affine(expr):
                raise self.error("where condition is not affine in the rank variables", token)
        return Comparison(self.to_sympy(left, start), op, self.to_sympy(right, right_start))


def _strip_comment(text: str) -> str:
    return text.split("#", 1)[0]


class _CascadeBuilder:
    """Reads statements in order and checks the whole cascade at the end."""

    def __init__(self, file: str):
        self.file = file
        self.decls = _Declarations()
        self.name: str | None = None
        self.inputs: dict[str, TensorDecl] = {}
        self.outputs: list[tuple[str, Token]] = []
        self.einsums: list[Einsum] = []
        self.positions: dict[int, Token] = {}  # id(einsum) -> first token
        self.statements = 0

    def error(self, message: str, token: Token) -> CascadeError:
        return CascadeError(message, self.file, token.line, token.col)

    def statement(self, tokens: list[Token]) -> None:
        parser = _LineParser(tokens, self.file, self.decls)
        first = tokens[0]
        is_keyword = (
            first.kind == "name" and first.text in KEYWORDS and parser.peek().kind == "name"
        )
        if is_keyword:
            parser.advance()
            getattr(self, f"_{first.text}")(parser, first)
        else:
            self._einsum(parser)
        parser.expect_end()
        self.statements += 1

    # -- declarations ------------------------------------------------------------------------
    def _cascade(self, parser: _LineParser, first: Token) -> None:
        if self.statements:
            raise self.error("'cascade NAME' must be the first statement", first)
        self.name = parser.expect_name("a cascade name").text

    def _declare_name(self, token: Token, what: str) -> None:
        name = token.text
        if name in RESERVED or name in FUNCTIONS_1 or name in FUNCTIONS_2 or name in REDUCTIONS:
            raise self.error(f"{name!r} is reserved and cannot name a {what}", token)
        if self.decls.taken(name):
            raise self.error(f"{name!r} is already declared", token)

    def _rank_name(self, parser: _LineParser) -> Token:
        token = parser.expect_name("a rank name")
        self._declare_name(token, "rank")
        if token.text == token.text.lower():
            raise self.error(
                f"rank name {token.text!r} needs an upper-case letter (its variable is the lower case)",
                token,
            )
        if self.decls.taken(token.text.lower()):
            raise self.error(f"variable {token.text.lower()!r} is already declared", token)
        return token

    def _rank(self, parser: _LineParser, first: Token) -> None:
        while True:
            token = self._rank_name(parser)
            parts: list[str] = []
            if parser.at("="):
                parser.advance()
                parts.append(self._rank_name(parser).text)
                self.decls.var_rank[parts[-1].lower()] = parts[-1]
                while parser.at("*"):
                    parser.advance()
                    parts.append(self._rank_name(parser).text)
                    self.decls.var_rank[parts[-1].lower()] = parts[-1]
                if len(parts) < 2:
                    raise parser.error("a partitioned rank needs at least two parts: M = M1 * M0")
            rank = Rank(token.text, tuple(parts))
            self.decls.ranks[rank.name] = rank
            self.decls.var_rank[rank.var] = rank.name
            if not parser.at(","):
                return
            parser.advance()

    def _param(self, parser: _LineParser, first: Token) -> None:
        while True:
            token = parser.expect_name("a param name")
            self._declare_name(token, "param")
            self.decls.params.append(token.text)
            if not parser.at(","):
                return
            parser.advance()

    def _input(self, parser: _LineParser, first: Token) -> None:
        while True:
            token = parser.expect_name("an input tensor")
            if token.text in RESERVED:
                raise self.error(f"{token.text!r} is a keyword, not a tensor", token)
            if token.text in self.inputs:
                raise self.error(f"tensor {token.text!r} is defined twice", token)
            parser.expect("[")
            indices = []
            while True:
                var = parser.expect_name("a rank variable")
                if var.text not in self.decls.var_rank:
                    raise self.error(f"rank variable {var.text!r} is not declared", var)
                indices.append(var.text)
                if not parser.at(","):
                    break
                parser.advance()
            parser.expect("]")
            self.inputs[token.text] = TensorDecl(token.text, tuple(indices), token.line)
            if not parser.at(","):
                return
            parser.advance()

    def _output(self, parser: _LineParser, first: Token) -> None:
        while True:
            token = parser.expect_name("an output tensor")
            self.outputs.append((token.text, token))
            if not parser.at(","):
                return
            parser.advance()

    # -- Einsums -----------------------------------------------------------------------------
    def _einsum(self, parser: _LineParser) -> None:
        head = parser.expect_name("a statement")
        if head.text in RESERVED:
            raise self.error(f"{head.text!r} is a keyword, not a tensor", head)
        if not parser.at("["):
            raise parser.error("expected '[' after the tensor name (TENSOR[idx, ...] = EXPR)")
        lhs = parser.access(head).indices
        self._check_lhs_nonnegative(lhs, parser.tokens)
        parser.expect("=")
        expr_start = parser.tok
        expr = parser.expression()
        where: tuple[Comparison, ...] = ()
        if parser.at("where"):
            parser.advance()
            where = parser.condition()
        variables = set(self.decls.var_rank)
        output_vars = set()
        iterative_var = None
        for index in lhs:
            output_vars |= {str(s) for s in index.free_symbols} & variables
            free = [s for s in index.free_symbols if str(s) in variables]
            if len(free) == 1 and sympy.expand(index - free[0]) == 1:
                if iterative_var is not None:
                    raise self.error("a recurrence may step one variable only", head)
                iterative_var = str(free[0])
        explicit = set()
        for node in walk(expr):
            if isinstance(node, Reduce):
                explicit |= set(node.vars)
        implicit = value_vars(expr, variables) - output_vars
        where_vars = set()
        for cmp in where:
            where_vars |= {str(s) for s in (cmp.left - cmp.right).free_symbols} & variables
        stray = where_vars - output_vars - implicit - explicit
        if stray:
            raise self.error(
                f"where uses variable(s) {sorted(stray)} outside the iteration space", expr_start
            )
        einsum = Einsum(
            name=head.text,
            lhs=tuple(lhs),
            expr=expr,
            where=where,
            line=head.line,
            iterative_var=iterative_var,
            output_vars=frozenset(output_vars),
            implicit_vars=frozenset(implicit),
            reduced_vars=frozenset(implicit | explicit),
            reads=[node for node in walk(expr) if isinstance(node, Access)],
        )
        self.einsums.append(einsum)
        self.positions[id(einsum)] = head

    def _check_lhs_nonnegative(self, lhs: tuple, tokens: list[Token]) -> None:
        """Left-hand indices must be non-negative: affine with non-negative coefficients."""
        variables = [var_symbol(v) for v in self.decls.var_rank]
        bracket = next(t for t in tokens if t.text == "[")
        for index in lhs:
            expr = sympy.expand(index)
            constant = expr.subs({v: 0 for v in variables})
            coeffs = [expr.coeff(v) for v in variables if v in expr.free_symbols]
            if not all(sympy.sympify(x).is_nonnegative for x in [constant, *coeffs]):
                raise self.error(f"left-hand index {index} can be negative (use non-negative "
                                 "coefficients and offsets)", bracket)

    # -- whole-cascade checks ----------------------------------------------------------------
    def finish(self, default_name: str) -> Cascade:
        arity = {name: len(decl.indices) for name, decl in self.inputs.items()}
        arity_where: dict[str, str] = {name: f"line {decl.line}" for name, decl in self.inputs.items()}
        definitions: dict[str, list[Einsum]] = {}
        for e in self.einsums:
            head = self.positions[id(e)]
            if e.name in self.inputs:
                raise self.error(f"tensor {e.name!r} is an input and cannot be defined", head)
            definitions.setdefault(e.name, []).append(e)
            self._check_arity(e.name, len(e.lhs), head, arity, arity_where)
        for e in self.einsums:
            for access in e.reads:
                token = Token("name", access.tensor, access.line, access.col)
                if access.tensor in arity:
                    self._check_arity(access.tensor, len(access.indices), token, arity, arity_where)
        iterative_slot = self._check_definitions(definitions)
        self._check_order(definitions)
        for name, token in self.outputs:
            if name not in definitions and name not in self.inputs:
                raise self.error(f"output {name!r} is never defined", token)
        cascade = Cascade(
            name=self.name or default_name,
            ranks=dict(self.decls.ranks),
            params=list(self.decls.params),
            inputs=dict(self.inputs),
            outputs=[name for name, _ in self.outputs],
            einsums=list(self.einsums),
            file=self.file,
            arity=arity,
            iterative_slot=iterative_slot,
        )
        self._check_cycles(cascade)
        if not cascade.outputs:
            raise CascadeError("the cascade declares no output (add 'output NAME')", self.file, 0, 0)
        return cascade

    def _check_arity(self, name, count, token, arity, arity_where) -> None:
        if name not in arity:
            arity[name] = count
            arity_where[name] = f"line {token.line}"
        elif arity[name] != count:
            raise self.error(
                f"tensor {name!r} has {count} indices here but {arity[name]} at {arity_where[name]}",
                token,
            )

    def _check_definitions(self, definitions: dict[str, list[Einsum]]) -> dict[str, int]:
        iterative_slot: dict[str, int] = {}
        for name, defs in definitions.items():
            main = [e for e in defs if e.iterative_var is not None]
            if len(defs) > 2 or (len(defs) == 2 and len(main) != 1):
                second = defs[1] if len(defs) == 2 and len(main) != 1 else defs[2]
                raise self.error(
                    f"tensor {name!r} is defined twice (first at line {defs[0].line})",
                    self.positions[id(second)],
                )
            if len(defs) == 1:
                if main:
                    raise self.error(
                        f"iterative tensor {name!r} has no initial value "
                        f"(add a statement {name}[...0...] = ... before its first use)",
                        self.positions[id(main[0])],
                    )
                continue
            step = main[0]
            initial = defs[0] if defs[1] is step else defs[1]
            slot = next(
                i for i, index in enumerate(step.lhs)
                if sympy.expand(index - var_symbol(step.iterative_var)) == 1
            )
            if initial.lhs[slot] != 0:
                raise self.error(
                    f"tensor {name!r} is defined twice (first at line {defs[0].line}); an initial "
                    f"value must have index 0 where the recurrence has "
                    f"{step.iterative_var} + 1",
                    self.positions[id(defs[1])],
                )
            initial.is_initial = True
            iterative_slot[name] = slot
        return iterative_slot

    def _check_order(self, definitions: dict[str, list[Einsum]]) -> None:
        defined = set(self.inputs)
        for e in self.einsums:
            for access in e.reads:
                if access.tensor in defined:
                    continue
                if access.tensor not in definitions:
                    raise CascadeError(
                        f"unknown tensor {access.tensor!r}", self.file, access.line, access.col
                    )
                later = definitions[access.tensor][0].line
                raise CascadeError(
                    f"tensor {access.tensor!r} is used before its definition (line {later})",
                    self.file, access.line, access.col,
                )
            defined.add(e.name)

    def _check_cycles(self, cascade: Cascade) -> None:
        immediate = nx.DiGraph()
        immediate.add_nodes_from(cascade.graph.nodes)
        immediate.add_edges_from(
            (u, v) for u, v, delayed in cascade.graph.edges(data="delayed") if not delayed
        )
        try:
            cycle = nx.find_cycle(immediate)
        except nx.NetworkXNoCycle:
            return
        names = [u for u, _ in cycle] + [cycle[0][0]]
        line_of = {e.name: e for e in cascade.einsums if not e.is_initial}
        first = min((line_of[n] for n in names if n in line_of), key=lambda e: e.line)
        raise self.error(
            "cycle " + " -> ".join(names) + " (only a read of a previous step may close a loop)",
            self.positions[id(first)],
        )


def parse(text: str, filename: str = "<string>") -> Cascade:
    """Parse cascade text; raises CascadeError with file, line and column on any error."""
    if not isinstance(text, str):
        raise CascadeError("cascade text must be a string", filename)
    builder = _CascadeBuilder(filename)
    for number, raw in enumerate(text.splitlines(), start=1):
        tokens = tokenize_line(_strip_comment(raw), number, filename)
        if tokens[0].kind == "end":
            continue
        builder.statement(tokens)
    if builder.statements == 0:
        raise CascadeError("empty cascade: no statements", filename, 0, 0)
    return builder.finish(Path(filename).stem if filename != "<string>" else "cascade")


def load(path: str | Path) -> Cascade:
    """Read and parse a `.cascade` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CascadeError(f"not UTF-8 text ({err.reason})", str(path)) from None
    return parse(text, str(path))
