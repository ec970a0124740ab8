"""The study language: ``stages:`` in a sweep file. Each stage is a sweep of its own (``grid`` /
``vary`` / ``trials``, ``repeat``, ``search``) over the study's ``base`` with the stage's own
section overrides (``train: {epochs: 50}``), under the study's ``budget`` (or the stage's own, which
replaces it: a screen of models over the budget, then a stage within it); from the second stage on, ``select:`` says what it
takes from the stage before and ``carry:`` which keys of those configs it keeps. A stage is made
a ``SweepSpec`` and expanded by the sweep language itself, once per carried config: ids, budget
and fill are the same rules as any sweep's, so a config an earlier stage trained with identical
settings has the same id and is not trained again."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configcheck import ConfigError, join, mapping, string
from orchestrator.study.rules import Rule, parse_select
from orchestrator.sweep.sections import resolve_driver
from orchestrator.sweep.spec import SpecError, SweepSpec, apply_overrides, build_spec, parse_override, parse_yaml, set_entry
from orchestrator.sweep.trialconfig import SECTIONS, canonical, get_dotted, resolve_trial, set_dotted, split_key

STUDY_KEYS = ("name", "description", "base", "budget", "wandb", "driver", "stages")
STAGE_KEYS = ("name", "description", *SECTIONS, "grid", "vary", "trials", "repeat", "search", "select", "carry",
              "budget")
PER_STAGE = ("grid", "vary", "trials", "repeat", "search")  # a study's stages each have their own


@dataclass(frozen=True)
class Stage:
    index: int
    name: str
    doc: dict[str, Any]  # the stage's own keys, as written (after --set)
    spec: SweepSpec  # the study's base with the stage's overrides: the first stage's sweep; later ones' template
    select: Rule | None = None  # None for the first stage
    carry: tuple[str, ...] = ("model",)  # dotted keys (or whole sections) of the selected configs kept

    @property
    def rule_words(self) -> str:
        """What it takes from the stage before, in words ("" for the first stage)."""
        return self.select.words() if self.select else ""

    def definition(self) -> str:
        """A digest of what the stage trains and selects (its doc and the study's base and budget):
        a stage that has started may not change it."""
        text = canonical({"stage": self.doc, "base": self.spec.base, "budget": self.spec.raw.get("budget")})
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Study:
    name: str
    file: str
    raw: dict[str, Any]  # the document after --set: what submit records and the step job rebuilds from
    stages: tuple[Stage, ...]
    driver: dict[str, Any] = field(default_factory=dict)  # the SLURM step job's resources (search.driver's keys)
    description: str = ""


def searches(spec: SweepSpec) -> bool:
    """Whether a stage's trials are proposed by a search (random, tpe, nsga2) rather than expanded."""
    return spec.search.get("algorithm", "grid") != "grid"


def read_doc(file: str | Path) -> Any:
    file = str(file)
    try:
        text = Path(file).read_text()
    except OSError as err:
        raise SpecError(file, "", f"cannot read spec: {err.strerror}") from None
    return parse_yaml(text, file)


def load_study(file: str | Path, sets: list[str] | tuple[str, ...] = ()) -> Study:
    file = str(file)
    doc = read_doc(file)
    try:
        _per_stage(doc)
        doc = apply_study_sets(mapping(doc, "", STUDY_KEYS), sets)
        return study_from_doc(doc, file)
    except ConfigError as err:
        raise SpecError.of(file, err) from None


def apply_study_sets(doc: dict[str, Any], sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``--set stages.N.KEY=VALUE`` (N: the stage's index or name) sets one key of a stage, as
    ``--set KEY=VALUE`` does for a sweep (``stages.1.train.epochs=5``, ``stages.0.grid.model.layers=[1,2]``,
    ``stages.2.select.top=1``); every other ``--set`` is the study's own (``train.epochs`` sets the
    base of every stage)."""
    study_sets = []
    for text in sets:
        key, value = parse_override(text)
        parts = key.split(".")
        if parts[0] != "stages":
            study_sets.append(text)
            continue
        stages = doc.get("stages")
        if len(parts) < 3 or not isinstance(stages, list):
            raise ConfigError(f"--set {key}", "expected stages.N.KEY=VALUE with N a stage's index or name")
        n = next((i for i, s in enumerate(stages) if parts[1] in (str(i), isinstance(s, dict) and s.get("name"))), None)
        if n is None:
            raise ConfigError(f"--set {key}", f"{parts[1]!r} is not a stage; stages: 0-{len(stages) - 1} or their names")
        stage = dict(stages[n]) if isinstance(stages[n], dict) else {}
        rest = parts[2:]
        if rest[0] in SECTIONS:
            split_key(".".join(rest), f"--set {key}")
            stage = set_dotted(stage, tuple(rest), value)
        elif rest[0] in ("grid", "vary") and len(rest) >= 3:
            swept = ".".join(rest[1:])
            split_key(swept, f"--set {key}")
            stage[rest[0]] = set_entry(stage.get(rest[0]), swept, value, key, f"stages[{n}].{rest[0]}") or None
        elif rest[0] in STAGE_KEYS:
            stage = set_dotted(stage, tuple(rest), value)
        else:
            raise ConfigError(f"--set {key}", "allowed after stages.N: " + ", ".join(STAGE_KEYS))
        doc = {**doc, "stages": [*stages[:n], stage, *stages[n + 1:]]}
    return apply_overrides(doc, study_sets)


def _merged(base: dict[str, Any], stage: dict[str, Any]) -> dict[str, Any]:
    """The study's base with a stage's section overrides (one level deep per section: a stage's
    ``train: {epochs: 50}`` keeps the base's optimizer)."""
    out = dict(base)
    for name in SECTIONS:
        if name in stage:
            own = stage[name]
            out[name] = {**out[name], **own} if isinstance(out.get(name), dict) and isinstance(own, dict) else own
    return out


def _under(err: ConfigError, i: int, stage: dict[str, Any]) -> ConfigError:
    """An error of a stage's spec, named where the user wrote the key: the stage, or the study's base."""
    path = err.path
    if path.startswith("base.") or path == "base":
        section = path.split(".")[1] if "." in path else ""
        return ConfigError(f"stages[{i}].{path[5:]}", err.message) if section in stage else err
    return ConfigError(f"stages[{i}].{path}" if path else f"stages[{i}]", err.message)


def _per_stage(doc: Any) -> None:
    for key in PER_STAGE if isinstance(doc, dict) else ():
        if doc.get(key) is not None:
            raise ConfigError(key, f"in a study each stage has its own: move it into a stage (stages[0].{key}, ...)")


def study_from_doc(doc: dict[str, Any], file: str) -> Study:
    _per_stage(doc)
    doc = mapping(doc, "", STUDY_KEYS)
    name = string(doc.get("name", Path(file).stem), "name")
    raw_stages = doc.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        raise ConfigError("stages", "expected a non-empty list of stages (mappings with a name)")
    base = mapping(doc.get("base"), "base", SECTIONS)
    stages: list[Stage] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_stages):
        path = f"stages[{i}]"
        st = mapping(raw, path, STAGE_KEYS)
        sname = string(st.get("name", f"stage{i + 1}"), join(path, "name"))
        if not sname.replace("-", "").replace("_", "").isalnum() or len(sname) > 40:
            raise ConfigError(join(path, "name"), f"{sname!r}: allowed letters, digits, - and _ (max 40)")
        if sname in seen:
            raise ConfigError(join(path, "name"), f"{sname!r} is also the name of stages[{seen[sname]}]; "
                              "stage names must differ")
        seen[sname] = i
        merged = _merged(base, st)
        sdoc = {"name": name, "base": merged, **{k: st[k] for k in PER_STAGE if k in st}}
        for key in ("budget", "wandb"):  # a stage's own budget replaces the study's (budget: {} for none)
            own = st.get(key) if key == "budget" and "budget" in st else doc.get(key)
            if own is not None:
                sdoc[key] = own
        try:
            spec = build_spec(sdoc, file)
        except ConfigError as err:
            raise _under(err, i, st) from None
        if searches(spec) and isinstance(st.get("select"), dict) and st["select"].get("seeds") is not None:
            raise ConfigError(join(path, "select.seeds"), "a search stage proposes its own trials (and seeds, if "
                              "search.space has train.seed): seeds are for a stage of fixed trials")
        select = None
        if i == 0:
            for key in ("select", "carry"):
                if key in st:
                    raise ConfigError(join(path, key), "the first stage has no stage before it to select from")
        else:
            if "select" not in st:
                raise ConfigError(join(path, "select"), "is required from the second stage on: top: K, "
                                  "best_per: [KEY, ...] or pareto: [params]")
            select = parse_select(st["select"], join(path, "select"))
        carry = _carry(st.get("carry"), join(path, "carry"), stages[-1].spec if stages else None)
        stages.append(Stage(i, sname, st, spec, select, carry))
    return Study(name, file, doc, tuple(stages), resolve_driver(doc.get("driver"), "driver"),
                 doc.get("description", "") if isinstance(doc.get("description"), str) else "")


def _carry(raw: Any, path: str, previous: SweepSpec | None) -> tuple[str, ...]:
    """Keys of the selected configs the stage keeps: whole sections (``model``) or dotted keys
    that the previous stage's configs have (``train.optimizer.lr``). Default: every model key; ``[]``:
    nothing (the stage's own trials, whatever was selected: the selection is still recorded)."""
    if raw is None:
        return ("model",)
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise ConfigError(path, "expected a list of keys, e.g. [model] or [model.layers, train.optimizer.lr] "
                          "([] carries nothing: the stage trains its own configs)")
    resolved = resolve_trial(previous.base) if previous is not None else {}
    out = []
    for j, key in enumerate(raw):
        where = f"{path}[{j}]"
        if not isinstance(key, str):
            raise ConfigError(where, f"expected a key like model.layers, got {key!r}")
        parts = tuple(key.split("."))
        if parts[0] not in SECTIONS:
            raise ConfigError(where, f"{key!r}: a key of {', '.join(SECTIONS)}")
        parent = get_dotted(resolved, parts[:-1])
        if len(parts) > 1 and not (isinstance(parent, dict) and parts[-1] in parent):
            raise ConfigError(where, f"{key!r} is not a key of the previous stage's configs; "
                              f"{parts[0]} has: {', '.join(sorted(resolved.get(parts[0]) or {}))}")
        out.append(key)
    return tuple(out)


def stage_spec(study: Study, stage: Stage, carried: dict[str, Any] | None, seed: int | None) -> SweepSpec:
    """The stage's sweep for one selected config: the base with the carried keys (``carried``: a
    trial's resolved config) and ``seed`` as train.seed, the stage's own grid on top."""
    base = stage.spec.base
    for key in stage.carry if carried is not None else ():
        parts = tuple(key.split("."))
        base = set_dotted(base, parts, json.loads(json.dumps(get_dotted(carried, parts))))
    if seed is not None:
        base = set_dotted(base, ("train", "seed"), seed)
    doc = {**stage.spec.raw, "base": base}
    try:
        return build_spec(doc, study.file)
    except ConfigError as err:
        raise SpecError(study.file, f"stages[{stage.index}]", f"a carried config is not valid here: {err}") from None


def carried_keys(stage: Stage, config: dict[str, Any]) -> dict[str, Any]:
    """The carried values of one config, flat (``model.layers: 3``), for trial overrides and views."""
    out: dict[str, Any] = {}
    for key in stage.carry:
        value = get_dotted(config, tuple(key.split(".")))
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out
