"""What the frozen echo encoder sees of the demo's synthetic world, per view type.

Renders patients of the demo's phenotype mix, each view type twice per patient (new probe
placement, speckle and cardiac phase), runs the pipeline's clip recipe and the random-init
MViTv2-S (init seed 0, as the demo embeds), and reports per view type the shares of
embedding variance explained by the phenotype, the patient's other anatomy and clip
nuisance, and cross-validated ridge probes of each phenotype (``echo2ecg.synth.audit``).
Also the mean cosine between clips and the share of variance that view type explains,
and, when both apical views are rendered, the probes on the mean of a patient's two
planes (render r of A4C with render r of A2C, as one study holds them): what the two
planes show together beyond either alone. With ``--poor-window`` each apical view is
also rendered once per patient through a poor acoustic window: the probes read the
other heart such a clip draws (``r_drawn_*``), the patient's own (``r_own_*``), and the
patient's own from the mean of a good and a poor clip (``r_with_good_*``), what a mean of
views loses to a poor plane.
Embeds in bf16 where the CPU computes it natively, as the pipeline does (about 1.3 s per
clip on 2 Zen 4 cores).

    .venv/bin/python bench/demo_world.py --patients 24 --json bench/out/demo_world.json
    .venv/bin/python bench/demo_world.py --patients 60 --renders 1 --views A4C A2C
    .venv/bin/python bench/demo_world.py --patients 40 --renders 1 --views A4C --poor-window
    .venv/bin/python bench/demo_world.py --smoke   # A4C, A2C, 3 patients, poor windows, LVEF
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from figures import parse_args, write_figures

from echo2ecg.data.echo import clip_from_frames
from echo2ecg.embed.views import embed_clips
from echo2ecg.models import build_echo_encoder
from echo2ecg.synth.audit import ridge_probe_r, variance_shares
from echo2ecg.synth.ecg_signals import sample_traits
from echo2ecg.synth.echo_views import APICAL_VIEWS, VIEWS, render_clip, sample_anatomy
from echo2ecg.synth.phenotypes import sample_patient

PHENOTYPES = ("lvedv", "lvesv", "lvef", "shd")
# The fewest clips the read-outs accept, 6 a view: with one phenotype the phenotype share
# needs 3 patients, the nuisance share two renders of each; both apical views, so that the
# two-plane and poor-window read-outs run too (18 clips, about 1 minute on one core with
# bf16).
SMOKE = {
    "patients": 3,
    "renders": 2,
    "views": list(APICAL_VIEWS),
    "phenotypes": ["lvef"],
    "poor_window": True,
}


def embed_view(encoder, patients, view: str, renders: int, poor_window: bool):
    """Each patient's ``view`` rendered ``renders`` times and embedded → ((P, renders, 512),
    (P, renders) the phenotype each clip's heart is drawn with). Render seeds follow the
    view, whichever views are asked for; poor-window clips draw from a stream of their
    own, so good clips are the same with or without them."""
    v = VIEWS.index(view)
    rendered = [
        render_clip(
            phenotype,
            anatomy,
            traits,
            view,
            np.random.default_rng([v, i, r, 1] if poor_window else [v, i, r]),
            n_frames=34,
            rows=300,
            cols=400,
            fps=30.0,
            heart_rate_bpm=72.0,
            hospital="Audit",
            poor_window=poor_window,
        )
        for i, (phenotype, anatomy, traits) in enumerate(patients)
        for r in range(renders)
    ]
    clips = [clip_from_frames(clip.frames) for clip in rendered]
    out = np.concatenate(
        [
            embed_clips(encoder, np.stack(clips[i : i + 4]), precision="auto")
            for i in range(0, len(clips), 4)
        ]
    )
    shown = np.array([clip.shown for clip in rendered], dtype=object)
    return out.reshape(len(patients), renders, -1), shown.reshape(len(patients), renders)


def phenotype_table(phenotypes, names) -> np.ndarray:
    """(N, K) float: the named fields of each phenotype."""
    return np.array([[getattr(p, name) for name in names] for p in phenotypes], float)


def probes(prefix: str, embeddings: np.ndarray, targets: np.ndarray, names) -> dict:
    """``{prefix + name: r}``, the cross-validated ridge probe of each target."""
    return {
        f"{prefix}{name}": round(float(r), 3)
        for name, r in zip(names, ridge_probe_r(embeddings, targets))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=24, help="patients per view type")
    parser.add_argument("--renders", type=int, default=2)
    parser.add_argument(
        "--views",
        nargs="+",
        choices=VIEWS,
        default=list(VIEWS),
        help="view types to render (default: all)",
    )
    parser.add_argument(
        "--phenotypes",
        nargs="+",
        choices=PHENOTYPES,
        default=list(PHENOTYPES),
        help="phenotypes to read out (default: all)",
    )
    parser.add_argument(
        "--poor-window",
        action="store_true",
        help="also render each apical view once per patient through a poor acoustic window",
    )
    parser.add_argument("--json", type=Path)
    args = parse_args(parser, SMOKE)
    warnings.filterwarnings("ignore", message="echo encoder: no EchoPrime weights")

    rng = np.random.default_rng(123)
    patients = [
        (sample_patient(rng, (1 / 3, 1 / 3, 1 / 3), 0.35), sample_anatomy(rng), sample_traits(rng))
        for _ in range(args.patients)
    ]
    targets = phenotype_table([p for p, _, _ in patients], args.phenotypes)
    encoder = build_echo_encoder(None, init_seed=0)
    started = time.perf_counter()
    embeddings, poor = {}, {}
    for view in args.views:
        embeddings[view], _ = embed_view(encoder, patients, view, args.renders, False)
        print(f"{view}: {time.perf_counter() - started:.0f} s", flush=True)
        if args.poor_window and view in APICAL_VIEWS:
            poor[view] = embed_view(encoder, patients, view, 1, True)
            print(f"{view}, poor window: {time.perf_counter() - started:.0f} s", flush=True)

    everything = np.concatenate([e.reshape(-1, e.shape[-1]) for e in embeddings.values()])
    unit = everything / np.linalg.norm(everything, axis=1, keepdims=True)
    cosines = unit @ unit.T
    total = ((everything - everything.mean(axis=0)) ** 2).sum(axis=1).mean()
    within_view = np.mean(
        [
            ((e.reshape(-1, e.shape[-1]) - e.reshape(-1, e.shape[-1]).mean(axis=0)) ** 2)
            .sum(axis=1)
            .mean()
            for e in embeddings.values()
        ]
    )
    result = {
        "patients_per_view": args.patients,
        "renders": args.renders,
        "mean_cosine_between_clips": round(float(cosines[np.triu_indices(len(unit), 1)].mean()), 3),
        "view_type_share": round(float(1 - within_view / total), 3),
        "views": {},
    }
    for view, e in embeddings.items():
        # the nuisance share is between renders of one patient: none with a single render
        shares = variance_shares(e, targets) if args.renders > 1 else {}
        result["views"][view] = {
            **{k: round(x, 3) for k, x in shares.items()},
            **probes("r_", e, targets, args.phenotypes),
        }
    if all(view in embeddings for view in APICAL_VIEWS):
        planes = np.mean([embeddings[view] for view in APICAL_VIEWS], axis=0)
        result["apical_planes_together"] = probes("r_", planes, targets, args.phenotypes)
    for view, (embedded, shown) in poor.items():
        # what the encoder keeps of the other heart a poor window draws, and what a mean of
        # a good and a poor clip of the patient still reads of the patient's own
        drawn = phenotype_table(shown[:, 0], args.phenotypes)
        both = (embeddings[view][:, :1] + embedded) / 2
        result.setdefault("poor_window", {})[view] = {
            **probes("r_drawn_", embedded, drawn, args.phenotypes),
            **probes("r_own_", embedded, targets, args.phenotypes),
            **probes("r_with_good_", both, targets, args.phenotypes),
        }
    print(json.dumps(result, indent=2))
    write_figures(result, args.json)


if __name__ == "__main__":
    main()
