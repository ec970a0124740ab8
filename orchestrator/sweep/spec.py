"""Load and validate a sweep spec (YAML via a strict ``yaml.safe_load``) into a frozen SweepSpec."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configcheck import ConfigError, integer, join, mapping, number, string, type_name
from orchestrator.sweep.sections import resolve_search, resolve_wandb
from orchestrator.sweep.trialconfig import SECTIONS, SWEEP_SECTIONS, resolve_trial, set_dotted, split_key
from train.safefs import safe_name
from train.yamlbound import BoundedLoader

TOP_KEYS = ("name", "description", "base", "grid", "vary", "trials", "budget", "repeat", "search", "wandb")
BUDGET_KEYS = ("max_params", "max_macs", "fill", "max_gpu_hours")


class SpecError(Exception):
    """Bad input: printed as one line ``FILE: KEY.PATH: message`` and exit code 2."""

    def __init__(self, file: str, path: str, message: str) -> None:
        self.file, self.path, self.message = file, path, message
        super().__init__(f"{file}: {path}: {message}" if path else f"{file}: {message}")

    @classmethod
    def of(cls, file: str | Path, err: ConfigError, prefix: str = "") -> SpecError:
        return cls(str(file), err.under(prefix).path, err.message)


@dataclass(frozen=True)
class Budget:
    max_params: int | None = None
    fill: tuple[str, ...] | None = None  # dotted key split, e.g. ("model", "channels")
    max_macs: int | None = None  # multiply-accumulates of one 32x32 forward (model.count_macs)
    max_gpu_hours: float | None = None  # submit refuses a sweep whose estimate (orchestrate calibrate) is more


@dataclass(frozen=True)
class SweepSpec:
    name: str
    file: str
    base: dict[str, Any]  # the raw (unresolved) base config, --set overrides applied
    grid: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    vary: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    trials: tuple[dict[str, Any], ...] = ()
    budget: Budget = field(default_factory=Budget)
    repeat: int = 1
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)  # the document as loaded, for spec.yaml
    search: dict[str, Any] = field(default_factory=dict)  # sweep-level: how trials are scheduled
    wandb: dict[str, Any] = field(default_factory=dict)  # sweep-level: where runs are logged


class _StrictLoader(BoundedLoader):
    """safe_load, and a duplicated key is an error instead of silently keeping the last one."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *anchor` (plain safe_load YAML); explicit keys may override merged ones
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def parse_yaml(text: str, file: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else "YAML"
        problem = err.problem or "invalid YAML"
        if "could not determine a constructor" in problem:
            problem += " (only plain YAML is allowed: no !!python or custom tags)"
        elif not isinstance(err, yaml.constructor.ConstructorError):
            problem = f"YAML syntax error: {problem}"
        raise SpecError(file, where, problem.replace("\n", " ")) from None
    except yaml.YAMLError as err:
        raise SpecError(file, "YAML", str(err).replace("\n", " ")) from None
    except RecursionError:  # PyYAML composes recursively: thousands of nested [[[...]]]
        raise SpecError(file, "YAML", "nested too deeply") from None


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` with the value read as a YAML scalar/flow (``3``, ``[2,2]``, ``adam``)."""
    if "=" not in text:
        raise ConfigError("--set", f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip(), parse_yaml(value, "--set") if value.strip() else None


def apply_overrides(doc: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``--set``: trial-config keys (model.*, train.*, ...) go to ``base``; the spec's own keys
    (name, repeat, budget.*) to the top level; ``grid.KEY=[...]`` / ``vary.KEY=[...]`` replace (or
    add) one list of the sweep, ``search.space.KEY=DOMAIN`` one key of a search's space, and
    ``=null`` removes it, so a sweep can be narrowed from the CLI."""
    for text in overrides:
        key, value = parse_override(text)
        parts = tuple(key.split("."))
        if parts[0] in SECTIONS:
            split_key(key, "--set")
            doc = set_dotted(doc, ("base", *parts), value)
        elif parts[0] in ("grid", "vary") and len(parts) >= 3:
            swept = key.split(".", 1)[1]
            split_key(swept, f"--set {parts[0]}")
            lists = set_entry(doc.get(parts[0]), swept, value, key, parts[0])
            doc = {**doc, parts[0]: lists or None}
        elif parts[:2] == ("search", "space") and len(parts) >= 4:  # one key's domain (null removes it)
            searched = key.split(".", 2)[2]
            split_key(searched, "--set search.space")
            search = dict(doc.get("search") or {})
            doc = {**doc, "search": {**search, "space": set_entry(search.get("space"), searched, value, key,
                                                                   "search.space")}}
        elif (len(parts) == 1 and parts[0] in ("name", "repeat", "description")) or (
                len(parts) == 2 and parts[0] in ("budget", "search", "wandb")):
            doc = set_dotted(doc, parts, value)
        else:
            raise ConfigError(f"--set {key}", "allowed: SECTION.KEY with SECTION in "
                              f"{', '.join(SECTIONS)}; grid.SECTION.KEY=[...] or vary.SECTION.KEY=[...] "
                              "(null removes it); search.space.SECTION.KEY=DOMAIN; name, repeat, budget.*, search.*, "
                              "wandb.*")
    return doc


def set_entry(entries: Any, name: str, value: Any, key: str, where: str) -> dict[str, Any]:
    """``entries`` (a grid, vary or search space) with ``name`` set to ``value`` in place (the
    order stays), or removed for None: a name it does not have is an error listing those it has."""
    out = dict(entries or {})
    if value is None:
        if name not in out:
            raise ConfigError(f"--set {key}", f"{where} has no key {name}; it has: {', '.join(out) or 'none'}")
        del out[name]
    else:
        out[name] = value
    return out


def _values(raw: Any, path: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(path, "expected a mapping {dotted.key: [values...]}")
    out = []
    for key, values in raw.items():
        split_key(key, path)
        if not isinstance(values, list) or not values:
            raise ConfigError(join(path, key), "expected a non-empty list of values")
        out.append((key, tuple(values)))
    return tuple(out)


def load_spec(file: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    file = str(file)
    try:
        text = Path(file).read_text()
    except OSError as err:
        raise SpecError(file, "", f"cannot read spec: {err.strerror}") from None
    return spec_from_text(text, file, overrides)


def is_study(file: str | Path) -> bool:
    """Whether a spec file holds ``stages:`` (a study; ``orchestrator/study/``). A file that cannot
    be read or parsed is left to the loader, which says why."""
    try:
        doc = parse_yaml(Path(file).read_text(), str(file))
    except (OSError, SpecError):
        return False
    return isinstance(doc, dict) and "stages" in doc


def sweep_name(file: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> str:
    """The sweep dir name a spec file makes (``runs/<name>``): a sweep's, or a study's (``stages:``)."""
    file = str(file)
    try:
        doc = parse_yaml(Path(file).read_text(), file)
    except OSError as err:
        raise SpecError(file, "", f"cannot read spec: {err.strerror}") from None
    if not (isinstance(doc, dict) and "stages" in doc):
        return load_spec(file, overrides).name
    names = [parse_override(o)[1] for o in overrides if o.split("=", 1)[0].strip() == "name"]
    name = names[-1] if names else doc.get("name", Path(file).stem)
    if not safe_name(name):
        raise SpecError(file, "name", f"{name!r} is not a safe directory name; allowed: letters, digits, _ . - (max 100)")
    return name


def spec_from_text(text: str, file: str, overrides: list[str] | tuple[str, ...] = ()) -> SweepSpec:
    doc = parse_yaml(text, file)
    if isinstance(doc, dict) and "stages" in doc:
        raise SpecError(file, "stages", "this file is a study (a chain of stages): plan, submit, status, cancel and "
                        "leaderboard take it; this command takes a single sweep")
    if doc is None:
        raise SpecError(file, "", "the spec is empty; expected a mapping with keys " + ", ".join(TOP_KEYS))
    try:
        doc = mapping(doc, "", TOP_KEYS)
        doc = apply_overrides(doc, overrides)
        return build_spec(doc, file)
    except ConfigError as err:
        raise SpecError.of(file, err) from None


def _description(value: Any) -> str:
    if not isinstance(value, str):  # type-checked like every top-level key: never walked blindly
        raise ConfigError("description", f"expected a string, got {type_name(value)}")
    return value


def build_spec(doc: dict[str, Any], file: str) -> SweepSpec:
    name = string(doc.get("name", Path(file).stem), "name")
    if not safe_name(name):
        raise ConfigError("name", f"{name!r} is not a safe directory name; allowed: letters, digits, _ . - (max 100)")
    for section in SWEEP_SECTIONS:
        if isinstance(doc.get("base"), dict) and section in doc["base"]:
            raise ConfigError(f"base.{section}", "is sweep-level: move it to the top level of the spec (beside "
                              "budget:); it is not part of any trial's config or id")
    base = mapping(doc.get("base"), "base", SECTIONS)
    try:
        resolve_trial(base)
    except ConfigError as err:
        raise err.under("base") from None
    trials = doc.get("trials") or []
    if not isinstance(trials, list):
        raise ConfigError("trials", "expected a list of mappings {dotted.key: value}")
    for i, t in enumerate(trials):
        if not isinstance(t, dict):
            raise ConfigError(f"trials[{i}]", f"expected a mapping {{dotted.key: value}}, got {type_name(t)}")
        for key in mapping(t, f"trials[{i}]", list(t) if isinstance(t, dict) else []):
            split_key(key, f"trials[{i}]")
    budget = mapping(doc.get("budget"), "budget", BUDGET_KEYS)
    fill = None
    if budget.get("fill") is not None:
        fill = split_key(string(budget["fill"], "budget.fill"), "budget.fill")
    max_params, max_macs = budget.get("max_params"), budget.get("max_macs")
    for key, value in (("max_params", max_params), ("max_macs", max_macs)):
        if value is not None:
            integer(value, f"budget.{key}", 1)
    max_gpu_hours = budget.get("max_gpu_hours")
    if max_gpu_hours is not None:
        number(max_gpu_hours, "budget.max_gpu_hours", 1e-9)
    if fill is not None and max_params is None and max_macs is None:
        raise ConfigError("budget.fill", "needs budget.max_params or budget.max_macs (or both) to fill up to")
    search = resolve_search(doc.get("search"))
    if search["algorithm"] != "grid":  # a search proposes its own trials from search.space
        for key in ("grid", "vary", "trials", "repeat"):
            if doc.get(key) is not None:
                raise ConfigError(key, f"is for search.algorithm grid; a {search['algorithm']} search proposes its trials "
                                  "from search.space (put fixed values in base)")
    return SweepSpec(
        name=name, file=file, base=base, grid=_values(doc.get("grid"), "grid"),
        vary=_values(doc.get("vary"), "vary"), trials=tuple(dict(t) for t in trials),
        budget=Budget(max_params, fill, max_macs, max_gpu_hours), repeat=integer(doc.get("repeat", 1), "repeat", 1, 1000),
        description=_description(doc.get("description", "")), raw=doc,
        search=search, wandb=resolve_wandb(doc.get("wandb")),
    )
