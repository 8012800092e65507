"""'Did you mean ...?': the closest known word to a mistyped one, by edit distance.

Used for tags (``stpe:train``) and notebook settings keys (``pipline_name``). The distance counts
insertions, deletions, substitutions and swaps of two neighbouring letters (``stpe`` -> ``step`` is one),
so the most common typing slips all cost 1.
"""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance between ``a`` and ``b``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, start=1):
            cost = char_a != char_b
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def allowed_distance(word: str) -> int:
    """How many slips a word of this length may contain and still be recognised: short words are easy
    to confuse with each other, so they get one."""
    return 1 if len(word) <= 5 else 2


def closest(word: str, vocabulary: Iterable[str]) -> str | None:
    """The known word nearest to ``word`` within :func:`allowed_distance`, or None (ties: the first)."""
    best, best_distance = None, None
    for known in vocabulary:
        distance = edit_distance(word, known)
        if distance <= allowed_distance(known) and (best_distance is None or distance < best_distance):
            best, best_distance = known, distance
    return best
