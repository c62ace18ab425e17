"""A hand-written parser for the cascade language (`docs/cascade-language.md`).

Text is read one statement a line: a regular-expression tokenizer, then a recursive-descent parser
per line, then whole-cascade checks (arity, definitions, initial values, cycles, name clashes,
transposed reads). Nesting is bounded (`MAX_DEPTH` levels), so neither the parser nor the
recursive walks downstream can overflow the stack. Every error is a `CascadeError` with file,
line and column; nothing is ever evaluated as Python.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import sympy

from einsum_cascade.ast import (COMPARISON_OPS, FUNCTIONS_1, FUNCTIONS_2, FUNCTIONS_3, KTH_REDUCTIONS,
                                MAX_DEPTH, REDUCTIONS, Access, Binary, BoolOp, Call, Compare, Comparison,
                                Node, Not, Number, Reduce, Size, Unary, Var, children, size_symbol,
                                value_vars, var_symbol, walk)
from einsum_cascade.errors import CascadeError
from einsum_cascade.ir import Cascade, Einsum, Rank, TensorDecl, TransposedRead

KEYWORDS = {"cascade", "rank", "param", "size", "input", "output"}
RESERVED = KEYWORDS | {"where", "and", "or", "not", "inf"}
COMPARISONS = set(COMPARISON_OPS)
FUNCTION_NAMES = FUNCTIONS_1 | FUNCTIONS_2 | FUNCTIONS_3 | REDUCTIONS | KTH_REDUCTIONS

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
    """Names declared so far: ranks, variables, sizes, params, tensors (with their arity)."""

    def __init__(self) -> None:
        self.ranks: dict[str, Rank] = {}
        self.var_rank: dict[str, str] = {}
        self.params: list[str] = []
        self.tensors: dict[str, int] = {}  # inputs and tensors defined so far -> arity
        self.where: dict[str, tuple[str, Token]] = {}  # name -> (what, token) of its declaration

    @property
    def sizes(self) -> set[str]:
        return set(self.var_rank.values()) | set(self.ranks)

    def taken(self, name: str) -> bool:
        return name in self.sizes or name in self.var_rank or name in self.params


class _LineParser:
    """Recursive-descent parser over the tokens of one statement (nesting bounded by MAX_DEPTH)."""

    def __init__(self, tokens: list[Token], file: str, decls: _Declarations):
        self.tokens = tokens
        self.pos = 0
        self.file = file
        self.decls = decls
        self.nesting = 0
        self.depth: dict[int, int] = {}  # id(node) -> depth of its tree
        self.start: dict[int, Token] = {}  # id(node) -> its first token
        self.keep: list = []  # keeps nodes alive so their ids stay unique while parsing

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

    # -- depth bookkeeping -------------------------------------------------------------------
    def enter(self, token: Token) -> None:
        """One more level of syntactic nesting (parenthesis, call, unary operator)."""
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)", token)

    def leave(self) -> None:
        self.nesting -= 1

    def make(self, node, start: Token, at: Token | None = None):
        """Record a new node's first token and tree depth; error when the tree gets too deep."""
        depth = 1 + max((self.depth.get(id(c), 1) for c in children(node)), default=0)
        if depth > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (more than {MAX_DEPTH} levels)", at or start)
        self.depth[id(node)] = depth
        self.start[id(node)] = start
        self.keep.append(node)
        return node

    def first(self, node) -> Token:
        return self.start.get(id(node), self.tok)

    # -- values and conditions ---------------------------------------------------------------
    def value(self) -> Node:
        """A value: arithmetic, comparisons (0/1), `and`, `or`, `not` (lowest precedence)."""
        start = self.tok
        node = self.conjunction()
        if not self.at("or"):
            return node
        args = [node]
        while self.at("or"):
            op = self.advance()
            args.append(self.conjunction())
            node = self.make(BoolOp("or", tuple(args)), start, op)
        return node

    def conjunction(self) -> Node:
        start = self.tok
        node = self.negation()
        if not self.at("and"):
            return node
        args = [node]
        while self.at("and"):
            op = self.advance()
            args.append(self.negation())
            node = self.make(BoolOp("and", tuple(args)), start, op)
        return node

    def negation(self) -> Node:
        if self.at("not"):
            token = self.advance()
            self.enter(token)
            node = self.make(Not(self.negation()), token)
            self.leave()
            return node
        return self.comparison_value()

    def comparison_value(self) -> Node:
        start = self.tok
        left = self.expression()
        if self.tok.kind == "op" and self.tok.text in COMPARISONS:
            op = self.advance()
            right = self.expression()
            if self.tok.kind == "op" and self.tok.text in COMPARISONS:
                raise self.error("comparisons do not chain: write a < b and b < c")
            return self.make(Compare(op.text, left, right), start, op)
        return left

    def expression(self) -> Node:
        start = self.tok
        node = self.term()
        while self.at("+") or self.at("-"):
            op = self.advance()
            node = self.make(Binary(op.text, node, self.term()), start, op)
        return node

    def term(self) -> Node:
        start = self.tok
        node = self.unary()
        while self.at("*") or self.at("/"):
            op = self.advance()
            node = self.make(Binary(op.text, node, self.unary()), start, op)
        return node

    def unary(self) -> Node:
        if self.at("-") or self.at("+"):
            token = self.advance()
            self.enter(token)
            operand = self.unary()
            self.leave()
            if token.text == "+":
                return operand
            return self.make(Unary("-", operand), token)
        return self.primary()

    def primary(self) -> Node:
        token = self.tok
        if token.kind == "number":
            self.advance()
            return self.make(Number(float(token.text)), token)
        if self.at("("):
            self.advance()
            self.enter(token)
            node = self.value()
            self.expect(")")
            self.leave()
            return node
        if token.kind != "name":
            found = token.text or "end of line"
            raise self.error(f"expected an expression, found {found!r}")
        if token.text in ("where", "and", "or"):
            raise self.error(f"expected an expression, found {token.text!r}")
        self.advance()
        if self.at("["):
            return self.access(token)
        if self.at("("):
            self.enter(token)
            node = self.call(token)
            self.leave()
            return node
        return self.make(self.name_value(token), token)

    def name_value(self, token: Token) -> Node:
        name = token.text
        if name == "inf":
            return Number(math.inf)
        if name in self.decls.var_rank:
            return Var(name)
        if name in self.decls.sizes or name in self.decls.params:
            return Size(name)
        if name in self.decls.tensors:
            if self.decls.tensors[name]:
                raise self.error(f"tensor {name!r} needs its indices: {name}[...]", token)
            return Access(name, (), token.line, token.col)
        if name.islower():
            raise self.error(f"rank variable {name!r} is not declared", token)
        raise self.error(f"unknown name {name!r} (not a size, param, scalar tensor or rank variable)",
                         token)

    def access(self, token: Token) -> Access:
        if token.text in RESERVED:
            raise self.error(f"{token.text!r} is a keyword, not a tensor", token)
        self.expect("[")
        indices = []
        if not self.at("]"):
            indices.append(self.index_expression())
            while self.at(","):
                self.advance()
                indices.append(self.index_expression())
        self.expect("]")
        return self.make(Access(token.text, tuple(indices), token.line, token.col), token)

    def variable_list(self, offset: int) -> list[Token] | None:
        """If the tokens from `offset` read `v, w :`, the variable tokens; else None."""
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

    def bound_variables(self, var_tokens: list[Token]) -> tuple[str, ...]:
        """Check and consume `v, w :`; the variable names."""
        for var_token in var_tokens:
            if var_token.text not in self.decls.var_rank:
                raise self.error(f"rank variable {var_token.text!r} is not declared", var_token)
        self.pos += 2 * len(var_tokens)
        return tuple(t.text for t in var_tokens)

    def reduction_rest(self, token: Token, op: str, names: tuple, k: Node | None) -> Reduce:
        """Body and optional `where` of a reduction, then ')'."""
        body = self.value()
        where: tuple = ()
        if self.at("where"):
            self.advance()
            where = self.condition()
        self.expect(")")
        return self.make(Reduce(op, names, body, where, k), token)

    def call(self, token: Token) -> Node:
        name = token.text
        if name in KTH_REDUCTIONS:
            self.expect("(")
            k = self.expression()
            self.expect(",")
            var_tokens = self.variable_list(0)
            if var_tokens is None:
                raise self.error(f"{name} needs its variables: {name}(k, v: EXPR)")
            return self.reduction_rest(token, name, self.bound_variables(var_tokens), k)
        if name in REDUCTIONS:
            var_tokens = self.variable_list(1)
            if var_tokens is not None:
                self.advance()  # '('
                return self.reduction_rest(token, name, self.bound_variables(var_tokens), None)
            if name in ("sum", "prod"):
                raise self.error(f"{name}(...) needs its variables: {name}(v: EXPR)", token)
        if name not in FUNCTIONS_1 and name not in FUNCTIONS_2 and name not in FUNCTIONS_3:
            raise self.error(f"unknown function {name!r}", token)
        self.expect("(")
        args = [self.value()]
        while self.at(","):
            self.advance()
            args.append(self.value())
        self.expect(")")
        wanted = 3 if name in FUNCTIONS_3 else 2 if name in FUNCTIONS_2 else 1
        if len(args) != wanted:
            raise self.error(f"{name} takes {wanted} argument(s), got {len(args)}", token)
        return self.make(Call(name, tuple(args)), token)

    # -- index and condition expressions ------------------------------------------------------
    def index_expression(self) -> sympy.Expr:
        start = self.tok
        node = self.expression()
        expr = self.to_sympy(node, start)
        if not self.is_affine(expr):
            raise self.error("index is not affine in the rank variables", start)
        return expr

    def to_sympy(self, node: Node, token: Token) -> sympy.Expr:
        """An arithmetic tree of numbers, sizes, params and rank variables as a sympy expression
        (iterative: a bounded tree, but no recursion needed)."""
        results: dict[int, sympy.Expr] = {}
        stack = [(node, False)]
        while stack:
            current, done = stack.pop()
            if isinstance(current, Number):
                if math.isinf(current.value):
                    raise self.error("inf is not allowed in an index or condition", token)
                value = current.value
                results[id(current)] = (sympy.Integer(int(value)) if value == int(value)
                                        else sympy.Rational(str(value)))
            elif isinstance(current, Var):
                results[id(current)] = var_symbol(current.name)
            elif isinstance(current, Size):
                results[id(current)] = size_symbol(current.name)
            elif isinstance(current, Unary) or (isinstance(current, Binary) and current.op in "+-*"):
                if not done:
                    stack.append((current, True))
                    stack.extend((c, False) for c in children(current))
                elif isinstance(current, Unary):
                    results[id(current)] = -results[id(current.operand)]
                else:
                    left, right = results[id(current.left)], results[id(current.right)]
                    results[id(current)] = {"+": left + right, "-": left - right,
                                            "*": left * right}[current.op]
            else:
                raise self.error(
                    "only rank variables, sizes, params and numbers with + - * may appear here", token
                )
        return results[id(node)]

    def is_affine(self, expr: sympy.Expr) -> bool:
        variables = [var_symbol(v) for v in self.decls.var_rank]
        present = [v for v in variables if v in expr.free_symbols]
        if not present:
            return True
        try:
            return sympy.Poly(sympy.expand(expr), *present).total_degree() <= 1
        except sympy.PolynomialError:
            return False

    def condition(self) -> tuple:
        """A `where` condition as a conjunction (tuple) of conditions: affine `Comparison`s,
        data-dependent `Compare`s, `BoolOp`s and `Not`s."""
        start = self.tok
        node = self.value()
        cond = self.to_condition(node, start)
        if isinstance(cond, BoolOp) and cond.op == "and":
            return tuple(cond.args)
        return (cond,)

    def to_condition(self, node: Node, start: Token):
        """Classify a parsed value as a condition (leaves affine or data-dependent)."""
        if isinstance(node, BoolOp):
            args = []
            for arg in node.args:
                cond = self.to_condition(arg, self.first(arg))
                if isinstance(cond, BoolOp) and cond.op == node.op:
                    args.extend(cond.args)
                else:
                    args.append(cond)
            return BoolOp(node.op, tuple(args))
        if isinstance(node, Not):
            return Not(self.to_condition(node.arg, self.first(node.arg)))
        if not isinstance(node, Compare):
            raise self.error("expected a comparison (< <= > >= == !=)", start)
        if any(isinstance(n, Access) for n in walk(node)):
            return node  # data-dependent: compares tensor values
        sides = []
        for side in (node.left, node.right):
            token = self.first(side)
            try:
                expr = self.to_sympy(side, token)
            except CascadeError:
                raise self.error("where condition is not affine: it may only compare affine "
                                 "expressions of rank variables, sizes and params (or read a "
                                 "tensor: a data-dependent condition)", token) from None
            if not self.is_affine(expr):
                raise self.error("where condition is not affine in the rank variables", token)
            sides.append(expr)
        return Comparison(sides[0], node.op, sides[1])


def _strip_comment(text: str) -> str:
    return text.split("#", 1)[0]


def _push_where(node, pending: tuple, scope: frozenset, variables: set):
    """`node` with each conjunct of `pending` attached to the reductions that bind its variables
    (the innermost reduction where all of them are in scope). Recursion is bounded by MAX_DEPTH."""
    if not pending:
        return node
    if isinstance(node, Reduce):
        inner = scope | set(node.vars)
        mine = tuple(c for c in pending
                     if value_vars(c, variables) & set(node.vars) and value_vars(c, variables) <= inner)
        rest = tuple(c for c in pending if c not in mine)
        body = _push_where(node.body, rest, frozenset(inner), variables)
        return Reduce(node.op, node.vars, body, node.where + mine, node.k)
    if isinstance(node, Unary):
        return Unary(node.op, _push_where(node.operand, pending, scope, variables))
    if isinstance(node, Binary):
        return Binary(node.op, _push_where(node.left, pending, scope, variables),
                      _push_where(node.right, pending, scope, variables))
    if isinstance(node, Compare):
        return Compare(node.op, _push_where(node.left, pending, scope, variables),
                       _push_where(node.right, pending, scope, variables))
    if isinstance(node, Call):
        return Call(node.func, tuple(_push_where(a, pending, scope, variables) for a in node.args))
    if isinstance(node, BoolOp):
        return BoolOp(node.op, tuple(_push_where(a, pending, scope, variables) for a in node.args))
    if isinstance(node, Not):
        return Not(_push_where(node.arg, pending, scope, variables))
    return node


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
        self.defaults: dict[str, int | float] = {}
        self.default_at: dict[str, Token] = {}

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

    def _claim(self, token: Token, what: str) -> None:
        """Declare `token` as a name of kind `what`; a clash with any other name is an error."""
        name = token.text
        if name in RESERVED or name in FUNCTION_NAMES:
            raise self.error(f"{name!r} is reserved and cannot name a {what}", token)
        if name in self.decls.where:
            other, at = self.decls.where[name]
            raise self.error(f"{what} {name!r} clashes with the {other} {name!r} declared at "
                             f"{at.line}:{at.col}", token)
        self.decls.where[name] = (what, token)

    def _rank_name(self, parser: _LineParser, what: str = "rank") -> Token:
        token = parser.expect_name("a rank name")
        if token.text == token.text.lower():
            raise self.error(
                f"rank name {token.text!r} needs an upper-case letter (its variable is the lower case)",
                token,
            )
        self._claim(token, what)
        var = Token(token.kind, token.text.lower(), token.line, token.col)
        self._claim(var, "rank variable")
        return token

    def _rank(self, parser: _LineParser, first: Token) -> None:
        while True:
            token = self._rank_name(parser)
            parts: list[str] = []
            if parser.at("="):
                parser.advance()
                parts.append(self._rank_name(parser, "rank part").text)
                self.decls.var_rank[parts[-1].lower()] = parts[-1]
                while parser.at("*"):
                    parser.advance()
                    parts.append(self._rank_name(parser, "rank part").text)
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
            self._claim(token, "param")
            self.decls.params.append(token.text)
            if not parser.at(","):
                return
            parser.advance()

    def _size(self, parser: _LineParser, first: Token) -> None:
        """`size NAME = NUMBER[, NAME = NUMBER ...]`: the default of a declared rank size, rank
        part or param (sizes a positive integer, params a finite number, a param may be negative)."""
        while True:
            token = parser.expect_name("a rank size or param name")
            name = token.text
            is_size = name in self.decls.sizes
            if not is_size and name not in self.decls.params:
                raise self.error(f"size {name!r}: not a rank, rank part or param declared before "
                                 "this line", token)
            if name in self.defaults:
                at = self.default_at[name]
                raise self.error(f"size {name!r} has a default already (at {at.line}:{at.col})", token)
            parser.expect("=")
            sign = 1.0
            number = parser.tok
            if parser.at("-") and not is_size:
                parser.advance()
                sign, number = -1.0, parser.tok
            if number.kind != "number":
                what = "a positive integer" if is_size else "a finite number"
                raise parser.error(f"size {name}: expected {what}, found {number.text or 'end of line'!r}")
            parser.advance()
            value = sign * float(number.text)
            if not math.isfinite(value):
                raise self.error(f"size {name} = {number.text}: not a finite number", number)
            if is_size:
                if value != int(value) or value < 1:
                    raise self.error(f"size {name} = {number.text}: a rank size must be a positive "
                                     "integer", number)
                self.defaults[name] = int(value)
            else:
                self.defaults[name] = int(value) if value == int(value) and abs(value) < 2 ** 53 else value
            self.default_at[name] = token
            if not parser.at(","):
                return
            parser.advance()

    def _check_defaults(self) -> None:
        """A rank whose size and every part have defaults must have consistent ones."""
        for rank in self.decls.ranks.values():
            names = (rank.name, *rank.parts)
            if rank.parts and all(n in self.defaults for n in names):
                product = math.prod(self.defaults[p] for p in rank.parts)
                if product != self.defaults[rank.name]:
                    raise self.error(f"size {rank.name} = {self.defaults[rank.name]} but the defaults "
                                     f"of {' * '.join(rank.parts)} give {product}",
                                     self.default_at[rank.name])

    def _input(self, parser: _LineParser, first: Token) -> None:
        while True:
            token = parser.expect_name("an input tensor")
            if token.text in RESERVED:
                raise self.error(f"{token.text!r} is a keyword, not a tensor", token)
            if token.text in self.inputs:
                raise self.error(f"tensor {token.text!r} is defined twice", token)
            self._claim(token, "input")
            indices = []
            if parser.at("["):  # `input A` and `input A[]` declare a scalar
                parser.advance()
                while not parser.at("]"):
                    var = parser.expect_name("a rank variable")
                    if var.text not in self.decls.var_rank:
                        raise self.error(f"rank variable {var.text!r} is not declared", var)
                    indices.append(var.text)
                    if not parser.at(","):
                        break
                    parser.advance()
                parser.expect("]")
            self.inputs[token.text] = TensorDecl(token.text, tuple(indices), token.line)
            self.decls.tensors[token.text] = len(indices)
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
        if head.text in self.decls.where and self.decls.where[head.text][0] != "tensor":
            other, at = self.decls.where[head.text]
            if other != "input":
                raise self.error(f"tensor {head.text!r} clashes with the {other} {head.text!r} "
                                 f"declared at {at.line}:{at.col}", head)
        elif head.text in FUNCTION_NAMES:
            raise self.error(f"{head.text!r} is reserved and cannot name a tensor", head)
        if parser.at("["):
            lhs = parser.access(head).indices
        elif parser.at("="):
            lhs = ()  # a scalar: `S = ...`
        else:
            raise parser.error("expected '[' after the tensor name (TENSOR[idx, ...] = EXPR)")
        self._check_lhs_nonnegative(lhs, parser.tokens)
        parser.expect("=")
        expr_start = parser.tok
        expr = parser.value()
        where: tuple = ()
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
        implicit = value_vars(expr, variables, conditions=False) - output_vars
        for node in walk(expr):
            if isinstance(node, Reduce):
                explicit |= set(node.vars)
                self._check_reduction_where(node, output_vars | implicit | explicit, variables, parser)
        where_vars = set()
        for cond in where:
            where_vars |= value_vars(cond, variables)
        stray = where_vars - output_vars - implicit - explicit
        if stray:
            raise self.error(
                f"where uses variable(s) {sorted(stray)} outside the iteration space", expr_start
            )
        space = output_vars | implicit
        space_where = tuple(c for c in where if value_vars(c, variables) <= space)
        pending = tuple(c for c in where if c not in space_where)
        expr = _push_where(expr, pending, frozenset(space), variables)
        reads = [node for node in walk(expr) if isinstance(node, Access)]
        for cond in space_where:
            reads += [node for node in walk(cond) if isinstance(node, Access)]
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
            reads=reads,
            space_where=space_where,
        )
        self.einsums.append(einsum)
        self.positions[id(einsum)] = head
        if head.text not in self.decls.tensors:
            self.decls.tensors[head.text] = len(lhs)
            self.decls.where.setdefault(head.text, ("tensor", head))

    def _check_reduction_where(self, node: Reduce, outer: set, variables: set, parser) -> None:
        """A reduction's own `where` may name only variables in scope there."""
        used = set()
        for cond in node.where:
            used |= value_vars(cond, variables)
        stray = used - set(node.vars) - outer
        if stray:
            raise self.error(f"the where of {node.op}({', '.join(node.vars)}: ...) uses variable(s) "
                             f"{sorted(stray)} that are neither reduced nor on the left",
                             parser.first(node))

    def _check_lhs_nonnegative(self, lhs: tuple, tokens: list[Token]) -> None:
        """Left-hand indices must be non-negative: affine with non-negative coefficients."""
        variables = [var_symbol(v) for v in self.decls.var_rank]
        bracket = next((t for t in tokens if t.text == "["), tokens[0])
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
            defaults=dict(self.defaults),
        )
        self._check_defaults()
        self._check_cycles(cascade)
        if not cascade.outputs:
            raise CascadeError("the cascade declares no output (add 'output NAME')", self.file, 0, 0)
        cascade.transposed_reads = self._transposed_reads(cascade)
        return cascade

    def _transposed_reads(self, cascade: Cascade) -> list[TransposedRead]:
        """Reads whose plain variables put a rank in another slot than the tensor declares
        (`QK[p,m]` of a tensor defined `QK[m,p]`)."""
        declared: dict[str, tuple] = {n: d.indices for n, d in self.inputs.items()}
        for name in cascade.defined:
            lhs = cascade.einsum(name).lhs
            declared[name] = tuple(str(i) if isinstance(i, sympy.Symbol) else None for i in lhs)
        var_rank = cascade.var_rank
        out = []
        for e in cascade.einsums:
            for access in e.reads:
                decl = declared.get(access.tensor)
                if decl is None or len(decl) != len(access.indices):
                    continue
                read = tuple(str(i) if isinstance(i, sympy.Symbol) and str(i) in var_rank else None
                             for i in access.indices)
                read_ranks = [var_rank[v] for v in read if v is not None]
                moved = [d for d, (u, v) in enumerate(zip(decl, read))
                         if u is not None and v is not None and var_rank[u] != var_rank[v]
                         and var_rank[u] in read_ranks]
                if moved:
                    out.append(TransposedRead(access, tuple(decl), read, tuple(moved)))
        return out

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
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark is not part of the text
        text = text[1:]
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
