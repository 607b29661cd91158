"""Same answers across rows: each row's greedy outputs for a handful of prompts, compared with the reference row's.

A prompt's outputs are *identical* when every token is; *close* when, at the first position where they differ,
each side's token is among the other side's top-k (the test of vLLM's `check_logprobs_close`: two numerically
near configurations may swap two almost equally likely tokens, after which the continuations are free to differ);
otherwise *far*. Tokens and top-k lists come from the OpenAI completions API's `logprobs` (token strings, as the
server's tokenizer writes them); an engine that gives none is compared on text, and a divergence there is far.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..matrix.model import AgreementWorkload

SHOWN = 12  # tokens of each continuation a message and the record show from the divergence on


@dataclass(frozen=True)
class Output:
    prompt: str
    text: str
    tokens: list[str] | None  # None: the engine gave no log-probabilities
    top: list[dict[str, float]] | None  # per position: token -> log-probability, the top k

    def to_json(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "text": self.text, "tokens": self.tokens, "top": self.top}

    @classmethod
    def of(cls, data: dict[str, Any]) -> Output:
        return cls(str(data["prompt"]), str(data["text"]), data.get("tokens"), data.get("top"))


def body(model: str, workload: AgreementWorkload, prompt: str) -> dict[str, Any]:
    """A greedy completions request for `prompt`: exactly `max_tokens` tokens (EOS ignored, so both sides have the
    same length), with the top-k log-probabilities of each position."""
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": workload.max_tokens,
        "temperature": 0,
        "logprobs": workload.top_k,
        "ignore_eos": True,
    }


def parse(prompt: str, answer: dict[str, Any]) -> Output:
    """An Output from a completions response (raises ValueError when it has no choice)."""
    choices = answer.get("choices") or []
    if not choices:
        raise ValueError(f"the response has no choices: {str(answer)[:300]}")
    choice = choices[0]
    logprobs = choice.get("logprobs") or {}
    tokens = logprobs.get("tokens")
    top = logprobs.get("top_logprobs")
    if not isinstance(tokens, list) or not tokens:
        return Output(prompt, str(choice.get("text", "")), None, None)
    tops = [dict(t or {}) for t in top] if isinstance(top, list) and len(top) == len(tokens) else None
    return Output(prompt, str(choice.get("text", "")), [str(t) for t in tokens], tops)


@dataclass(frozen=True)
class Divergence:
    """One prompt's comparison with the reference: where the outputs first differ and how."""

    prompt: str
    position: int | None  # the first differing token (characters when compared on text); None: identical
    close: bool  # identical, or each side's token among the other's top-k where they first differ
    unit: str  # "token" or "character"
    reference: str  # the reference's continuation from the divergence on
    ours: str
    reference_top: list[tuple[str, float]]  # the top-k at the divergence, most likely first
    ours_top: list[tuple[str, float]]

    @property
    def identical(self) -> bool:
        return self.position is None

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "identical": self.identical,
            "position": self.position,
            "unit": self.unit,
            "close": self.close,
            "reference": self.reference,
            "ours": self.ours,
            "reference_top": self.reference_top,
            "ours_top": self.ours_top,
        }

    def said(self) -> str:
        """The divergence in words, for a failure message and report.md's notes."""
        if self.identical:
            return f"prompt {self.prompt!r}: identical"
        how = "close" if self.close else "far"
        text = (
            f"prompt {self.prompt!r}: first differs at {self.unit} {self.position} ({how}): "
            f"reference {self.reference!r}, this row {self.ours!r}"
        )
        if self.reference_top or self.ours_top:
            text += f"; reference top-k {_shown(self.reference_top)}, this row's top-k {_shown(self.ours_top)}"
        return text


def _shown(top: list[tuple[str, float]]) -> str:
    return "[" + ", ".join(f"{t!r} {lp:.2f}" for t, lp in top) + "]"


def _ranked(top: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(((t, float(lp)) for t, lp in top.items()), key=lambda x: -x[1])


def compare(reference: Output, ours: Output) -> Divergence:
    """Where `ours` first differs from `reference`, and whether that divergence is close."""
    if reference.tokens is None or ours.tokens is None:  # text only: a difference cannot be judged close
        x, y = reference.text, ours.text
        j = next((k for k, (p, q) in enumerate(zip(x, y, strict=False)) if p != q), min(len(x), len(y)))
        if x == y:
            return Divergence(ours.prompt, None, True, "character", "", "", [], [])
        return Divergence(ours.prompt, j, False, "character", x[j : j + 4 * SHOWN], y[j : j + 4 * SHOWN], [], [])
    a, b = reference.tokens, ours.tokens
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    if a == b:
        return Divergence(ours.prompt, None, True, "token", "", "", [], [])
    ref_top = reference.top[i] if reference.top and i < len(reference.top) else {}
    our_top = ours.top[i] if ours.top and i < len(ours.top) else {}
    close = i < len(a) and i < len(b) and b[i] in ref_top and a[i] in our_top
    return Divergence(
        ours.prompt,
        i,
        close,
        "token",
        "".join(a[i : i + SHOWN]),
        "".join(b[i : i + SHOWN]),
        _ranked(ref_top),
        _ranked(our_top),
    )


@dataclass(frozen=True)
class Agreement:
    """A row's outputs against the reference row's."""

    divergences: list[Divergence]

    @property
    def identical_share(self) -> float:
        return sum(d.identical for d in self.divergences) / max(len(self.divergences), 1)

    @property
    def close_share(self) -> float:
        return sum(d.close for d in self.divergences) / max(len(self.divergences), 1)

    def figures(self) -> dict[str, Any]:
        return {
            "identical_share": self.identical_share,
            "close_share": self.close_share,
            "first_divergence": [d.position for d in self.divergences],
            "divergences": [d.to_json() for d in self.divergences],
        }

    def problems(self, workload: AgreementWorkload, reference_name: str) -> list[str]:
        """Why the row fails its agreement case: too few identical, or too few close, outputs."""
        n = len(self.divergences)
        short = []
        if self.identical_share < workload.min_identical:
            short.append(f"identical {self.identical_share * n:.0f}/{n} (min_identical {workload.min_identical:g})")
        if self.close_share < workload.min_close:
            short.append(f"identical or close {self.close_share * n:.0f}/{n} (min_close {workload.min_close:g})")
        if not short:
            return []
        worst = [d for d in self.divergences if not d.close] or [d for d in self.divergences if not d.identical]
        return [
            f"greedy outputs diverge from those of {reference_name} beyond the tolerance: {'; '.join(short)}",
            *[d.said() for d in worst],
        ]


def agreement(reference: list[Output], ours: list[Output]) -> Agreement:
    """Each prompt's outputs against the reference's (the same prompts, in the same order)."""
    by_prompt = {o.prompt: o for o in reference}
    return Agreement([compare(by_prompt[o.prompt], o) if o.prompt in by_prompt else _unanswered(o) for o in ours])


def _unanswered(ours: Output) -> Divergence:
    """A prompt the reference has no output for cannot agree with it: far, at its first token."""
    return Divergence(ours.prompt, 0, False, "token", "(the reference has no output for it)", ours.text[:80], [], [])
