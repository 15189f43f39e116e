"""Every metric name and the values it produces with their direction: one explicit list, free of
torch, so `raygan runs list --sort psnr`, `raygan tune --dry-run` and a sweep's objective know that
FID is minimised without importing the modules that compute it. Those modules register their
functions under these names (raygan.metrics.registry checks each registration against this list).

Spelling: a metric's name is the spelling of its values, with underscores (`domain_acc`,
`cycle_psnr`, `gan_test`); the dashed spelling (`domain-acc`) is accepted everywhere as an alias.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from raygan.errors import ConfigError

SPECS: Dict[str, Dict[str, Any]] = {
    # generated images vs reference features of an extractor
    "fid": {"kind": "features", "keys": {"fid": "min"}},
    "kid": {"kind": "features", "keys": {"kid": "min", "kid_std": None}},
    "is": {"kind": "features", "keys": {"is": "max", "is_std": None}},
    "pr": {"kind": "features", "keys": {"precision": "max", "recall": "max"}},
    "dc": {"kind": "features", "keys": {"density": "max", "coverage": "max"}},
    # repaired vs clean test images
    "psnr": {"kind": "restoration", "keys": {"psnr": "max"}},
    "ssim": {"kind": "restoration", "keys": {"ssim": "max"}},
    "psnr_masked": {"kind": "restoration", "keys": {"psnr_masked": "max"}},
    # a classifier trained on, or tested against, generated images
    "cas": {"kind": "classifier", "keys": {"cas": "max", "real_acc": None}},
    "gan_test": {"kind": "classifier", "keys": {"gan_test": "max", "real_acc": None}},
    # translated images judged in the target domain
    "fid_a2b": {"kind": "translation", "keys": {"fid_a2b": "min", "baseline_fid_a2b": None}},
    "fid_b2a": {"kind": "translation", "keys": {"fid_b2a": "min", "baseline_fid_b2a": None}},
    "domain_acc": {"kind": "translation", "keys": {
        "domain_acc": "max", "domain_acc_a2b": "max", "domain_acc_b2a": "max", "baseline_domain_acc": None,
        "baseline_domain_acc_a2b": None, "baseline_domain_acc_b2a": None}},
    "cycle_psnr": {"kind": "translation", "keys": {
        "cycle_psnr": "max", "cycle_psnr_a": "max", "cycle_psnr_b": "max", "cycle_ssim": "max",
        "cycle_ssim_a": "max", "cycle_ssim_b": "max"}},
}


#: metrics registered beyond SPECS (raygan.metrics.registry notes each here when it registers one): a
#: new objective is one decorated function; a torch-free caller that meets a name it does not know
#: imports raygan.metrics first (the layers above do, e.g. raygan.distributed.sweep.options)
_REGISTERED: Dict[str, Dict[str, Any]] = {}


def note(name: str, kind: str, keys: Dict[str, Optional[str]]) -> None:
    _REGISTERED[canonical(name)] = {"kind": kind, "keys": dict(keys)}


def forget(name: str) -> None:
    _REGISTERED.pop(canonical(name), None)


def known(name: str) -> bool:
    return canonical(name) in SPECS or canonical(name) in _REGISTERED


def _all() -> Dict[str, Dict[str, Any]]:
    return {**SPECS, **_REGISTERED} if _REGISTERED else SPECS


def canonical(name: str) -> str:
    """The one spelling of a metric name or value key (`domain-acc` -> `domain_acc`)."""
    return name.strip().replace("-", "_") if isinstance(name, str) else name


def names() -> List[str]:
    return sorted(_all())


def spec(name: str) -> Dict[str, Any]:
    try:
        return SPECS[canonical(name)] if canonical(name) in SPECS else _all()[canonical(name)]
    except KeyError:
        raise ConfigError(f"unknown metric '{name}'; choose one of: {', '.join(names())}") from None


def value_keys() -> List[str]:
    return sorted({k for s in _all().values() for k, d in s["keys"].items() if d})


def direction(key: str) -> str:
    """'min' or 'max' for a metric value key (e.g. fid, kid, psnr, precision)."""
    key = canonical(key)
    for specs in (SPECS, None):
        for s in (specs or _all()).values():
            d: Optional[str] = s["keys"].get(key)
            if d:
                return d
    raise ConfigError(f"no metric produces a value named '{key}'; metric values: {', '.join(value_keys())}")


def better(key: str, a: float, b: float) -> bool:
    """True when value a is better than value b for metric value `key`."""
    return a < b if direction(key) == "min" else a > b


def kind(name: str) -> str:
    return spec(name).get("kind", "features")


def primary_key(metric: str) -> str:
    """The value a metric name is judged by (fid -> fid, pr -> precision, psnr -> psnr)."""
    for k, d in spec(metric)["keys"].items():
        if d:
            return k
    raise ConfigError(f"metric '{metric}' has no value with a direction")


def metric_of(key: str) -> Optional[str]:
    """The metric name that produces a value key (precision -> pr, baseline_fid_a2b -> fid_a2b)."""
    key = canonical(key)
    for specs in (SPECS, None):
        every = specs or _all()
        for name in sorted(every):
            if key in every[name]["keys"]:
                return name
    return None


def objective(metrics: list) -> Optional[str]:
    """The first judged value of a run's metric list (keep-best checkpoints, the default sweep
    objective), or None when it evaluates nothing."""
    return primary_key(metrics[0]) if metrics else None


# ---------------------------------------------------------------------------- protocol text
def _get(p: Dict[str, Any], path: str) -> Any:
    """A protocol field, from the nested protocol or its flattened form (MLflow tags: 'a.b')."""
    if path in p:
        return p[path]
    cur: Any = p
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _json(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in "[{":
        import json

        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def _ops(p: Dict[str, Any]) -> str:
    ops = _json(_get(p, "degradations.ops")) or []
    parts = []
    for op in ops if isinstance(ops, list) else []:
        kv = ",".join(f"{k}={'..'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in op.items()
                      if k != "name")
        parts.append(f"{op.get('name')}({kv})" if kv else str(op.get("name")))
    return " -> ".join(parts) or "?"


def _seeds(p: Dict[str, Any], fallback: Any) -> str:
    seeds = _json(_get(p, "seeds"))
    if isinstance(seeds, list) and seeds:
        return f"seeds {', '.join(map(str, seeds))}"
    return f"seed {fallback}" if fallback is not None else ""


def protocol_text(key: str, p: Optional[Dict[str, Any]]) -> str:
    """How value `key` was made, in one line of that metric's own protocol: restoration values
    name their test images, degradations and seed; feature values their extractor and reference;
    classifier and translation values theirs. Never another metric's protocol."""
    if not p:
        return "no protocol recorded"
    k = canonical(key)
    base = k[len("baseline_"):] if k.startswith("baseline_") else k
    metric = metric_of(base) or ("fid" if base == "fid" else None)
    what = SPECS.get(metric or "", {}).get("kind", "features")
    n = _get(p, "num_samples")
    ext = f"{_get(p, 'extractor')}@{str(_get(p, 'weights_hash') or '?')[:12]}" if _get(p, "extractor") else ""
    resize = f"resize {_get(p, 'resize')}" if _get(p, "resize") else ""
    if what == "restoration":
        crop = _get(p, "border_crop")
        parts = [f"{n} test images of {_get(p, 'reference')}", f"degraded by {_ops(p)}",
                 _seeds(p, _get(p, "degradations.seed")), f"{_get(p, 'colour')}, data range 1",
                 f"border crop {crop} px" if crop not in (None, 0, "0") else "",
                 "holes only" if k == "psnr_masked" else "", "per image, then mean"]
    elif what == "classifier":
        clf = ", ".join(f"{f[4:]} {_get(p, f)}" for f in ("clf_width", "clf_steps", "clf_batch_size", "clf_lr",
                                                           "clf_seed", "clf_augment") if _get(p, f) is not None)
        parts = [f"classifier recipe ({clf})" if clf else "", f"trained on {_get(p, 'clf_train')}"
                 if _get(p, "clf_train") else "", f"{_get(p, 'clf_num_samples')} generated images"
                 if _get(p, "clf_num_samples") else "", _seeds(p, None)]
    elif what == "translation" or (_get(p, "task") == "translate"):
        na, nb = _get(p, "num_samples_a"), _get(p, "num_samples_b")
        if metric == "cycle_psnr":
            parts = [f"A->B->A vs {na} test A, B->A->B vs {nb} test B", f"{_get(p, 'cycle.colour')}, data range 1",
                     "per image, then mean"]
        elif metric == "domain_acc":
            parts = [f"{ext} classifier's argmax is the target class {_get(p, 'target_class')}",
                     f"{na} test A, {nb} test B translated"]
        else:
            parts = [f"extractor {ext}", f"{na} test A translated vs {_get(p, 'reference_b')}, {nb} test B vs "
                     f"{_get(p, 'reference_a')}", resize]
        if k.startswith("baseline_"):
            parts.append("the untranslated input scored the same way")
    else:  # features: generated (or repaired) images against a reference
        made = "repaired" if _get(p, "task") == "repair" else "generated"
        ref = f"{_get(p, 'reference_count')} {_get(p, 'reference')}"
        parts = [f"extractor {ext}, {n} {made} vs {ref}, {resize}" if ext else f"{n} {made} vs {ref}",
                 _seeds(p, None), str(_get(p, "domain_warning") or "")]
    psi = _get(p, "truncation_psi")
    if psi is not None and what in ("features", "classifier"):  # `raygan eval --trunc`: a truncated generator
        parts.append(f"truncation psi {float(psi):g} in {_get(p, 'truncation_space') or '?'}")
    text = "; ".join(x for x in parts if x)
    stat = _get(p, "statistic")
    return f"{text}; {stat}" if stat else text


def protocol_lines(keys, p: Optional[Dict[str, Any]]) -> List[tuple]:
    """[(value keys, protocol text)]: values that share a protocol share a line, in order."""
    out: List[tuple] = []
    for key in keys:
        text = protocol_text(key, p)
        for i, (ks, t) in enumerate(out):
            if t == text:
                out[i] = (ks + [key], t)
                break
        else:
            out.append(([key], text))
    return out
