"""Kubernetes names and label values: sanitising what we generate, validating what the user typed.

Generated names (from a notebook or step name) are sanitised silently, with a short hash suffix when they
have to be cut so that two long names with the same prefix stay distinct. Names the user gave explicitly
are validated instead: rewriting them would make ``cellpipe status NAME`` look for something else.
"""

from __future__ import annotations

import hashlib
import re

from jupyter_ext.errors import TargetError

DNS_LABEL_MAX = 63  # RFC 1123 label: Job names (their pods get a `job-name` label), namespaces, volumes
DNS_SUBDOMAIN_MAX = 253  # RFC 1123 subdomain: PVC and Secret names
CRONJOB_NAME_MAX = 52  # the CronJob controller appends an 11-character suffix to name its Jobs
LABEL_VALUE_MAX = 63

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_HASH_LEN = 8


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_LEN]


def _fit(text: str, original: str, max_len: int, strip: str) -> str:
    """Cut ``text`` to ``max_len`` keeping it unique: ``<prefix>-<hash of the original>``."""
    if len(text) <= max_len:
        return text
    suffix = _short_hash(original)
    prefix = text[: max_len - len(suffix) - 1].rstrip(strip)
    return f"{prefix}-{suffix}" if prefix else suffix


def sanitize_name(text: str, max_len: int = DNS_LABEL_MAX) -> str:
    """Turn any text into a valid DNS-1123 label (lowercase alphanumerics and '-', at most ``max_len``).

    Invalid characters become '-', runs of '-' collapse, and the result never starts or ends with '-'.
    When the text had to be truncated, an 8-character hash of the original text is appended.
    Text with nothing usable in it becomes a hash, so the result is never empty.
    """
    if max_len < _HASH_LEN + 2:
        raise ValueError(f"max_len must be at least {_HASH_LEN + 2}")
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    name = re.sub(r"-{2,}", "-", name).strip("-")
    if not name:
        return _short_hash(text)
    return _fit(name, text, max_len, "-")


def label_value(text: str) -> str:
    """Turn any text into a valid label value (<=63, alnum plus ``-_.``, starting/ending alphanumeric).

    Label values keep their case. Used for owners (``alice@example.com`` -> ``alice-example.com``),
    run ids and pipeline names; the raw value goes into an annotation where it matters.
    """
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
    value = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)
    if not value and text:
        return _short_hash(text)
    return _fit(value, text, LABEL_VALUE_MAX, "-_.")


def is_dns_label(name: str, max_len: int = DNS_LABEL_MAX) -> bool:
    return len(name) <= max_len and bool(_DNS_LABEL.match(name))


def is_label_value(value: str) -> bool:
    return len(value) <= LABEL_VALUE_MAX and bool(_LABEL_VALUE.match(value))


def is_qualified_name(key: str) -> bool:
    """A label or annotation key: ``[prefix/]name``, prefix a DNS subdomain, name like a label value."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (len(prefix) <= DNS_SUBDOMAIN_MAX and _DNS_SUBDOMAIN.match(prefix)):
        return False
    return bool(name) and is_label_value(name)


def validate_name(
    name: str,
    *,
    kind: str = "job",
    field: str = "name",
    max_len: int = DNS_LABEL_MAX,
    subdomain: bool = False,
) -> str:
    """Return ``name`` unchanged if Kubernetes accepts it as the name of a ``kind``, else raise TargetError.

    ``subdomain=True`` allows dots and up to 253 characters (PVC and Secret names).
    """
    limit = min(max_len, DNS_SUBDOMAIN_MAX) if subdomain else max_len
    pattern = _DNS_SUBDOMAIN if subdomain else _DNS_LABEL
    if isinstance(name, str) and len(name) <= limit and pattern.match(name):
        return name
    if not isinstance(name, str) or not name:
        problem = "is empty"
    elif len(name) > limit:
        problem = f"is {len(name)} characters long, the limit is {limit}"
    elif name != name.lower():
        problem = "has uppercase letters"
    elif not re.match(r"^[a-z0-9]", name) or not re.search(r"[a-z0-9]$", name):
        problem = "must start and end with a letter or digit"
    else:
        allowed = "'-' and '.'" if subdomain else "'-'"
        problem = f"may only contain lowercase letters, digits and {allowed}"
    rules = f"lowercase letters, digits and '-'{' or .' if subdomain else ''}, at most {limit} characters"
    suggestion = sanitize_name(str(name or kind), min(limit, DNS_LABEL_MAX))
    raise TargetError(
        f"invalid {kind} name '{name}': it {problem}",
        field=field,
        hint=f"Use {rules}, starting and ending with a letter or digit, e.g. '{suggestion}'",
    )
