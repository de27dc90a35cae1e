"""The command line: parse arguments, dispatch to the library, print. No model or data logic.

A user error (PushforwardError or a bad flag) prints one ``error: ...`` line and exits with 2.

May import, of this package: config, data, dist, errors, experiments, explore, files, limits,
metrics/compare, models, plots, recipes, reports, run, run_folder, training/loop, version.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import dist, recipes
from .config import INT_LIMIT, TrainConfig, add_flags, whole_number
from .errors import Interrupted, PushforwardError
from .files import safe_name
from .limits import out_of_memory
from .metrics import compare
from .models import MODELS
from .version import __version__

if TYPE_CHECKING:
    from .run import EvalOptions


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


SEED = whole_number(-INT_LIMIT)


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number above 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="pushforward", description="VAEs, GANs and Gaussian mixtures on toy and image data."
    )
    p.add_argument("--version", action="version", version=f"pushforward {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = sub.add_parser("demo", help="fit the models on embedded data and write a report")
    demo.add_argument("--out", default="pushforward-demo", help="report folder")
    data = sub.add_parser("data", help="data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    listing = data_sub.add_parser("list", help="data sets, sizes, and where each was found")
    listing.add_argument("--data-dir", default=None, help="folder searched first")
    _train_parser(sub.add_parser("train", help="train a model and write a run folder"))
    _sample_parser(sub.add_parser("sample", help="draw samples from a trained run"))
    _bench_parser(
        sub.add_parser("bench", help="train models for the same time budget and compare them")
    )
    _experiment_parser(
        sub.add_parser("experiment", help="run one of the paper's claims as an experiment")
    )
    _eval_parser(sub.add_parser("eval", help="evaluate a trained run; writes RUN/eval.json"))
    compare.add_parser(sub)
    explore = sub.add_parser("explore", help="a web page that replays a run's training")
    explore.add_argument("run")
    explore.add_argument("--out", default=None, help="FILE.html (default RUN/explore.html)")
    explore.add_argument("--gif", default=None, help="also write the timeline as FILE.gif")
    return p


def _train_parser(train: argparse.ArgumentParser) -> None:
    """One sub-command per model, with the shared options and the model's own."""
    models = train.add_subparsers(
        dest="model", required=True, parser_class=_Parser, metavar="MODEL"
    )
    for name, cls in MODELS.items():
        m = models.add_parser(
            name,
            help=(cls.__doc__ or "").split("\n")[0],
            epilog=recipes.help_text(name) or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        m.add_argument("--out", default=None, help="run folder (default runs/MODEL-DATA)")
        m.add_argument(
            "--config", default=None, metavar="FILE.toml", help="options from a TOML file"
        )
        m.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override one option"
        )
        add_flags(m, TrainConfig)
        add_flags(m, cls.Config)


def _sample_parser(sample: argparse.ArgumentParser) -> None:
    sample.add_argument("run")
    sample.add_argument("-n", type=whole_number(1), default=64, help="number of samples")
    sample.add_argument("--seed", type=SEED, default=0)
    sample.add_argument("--out", default=None, help="FILE.png (picture) or FILE.npy (raw samples)")
    what = sample.add_mutually_exclusive_group()
    what.add_argument(
        "--recon", action="store_true", help="vae: n held-out examples beside their reconstructions"
    )
    what.add_argument(
        "--interpolate",
        action="store_true",
        help="vae: decoded lines in z between n pairs of examples",
    )
    what.add_argument(
        "--label",
        type=whole_number(0, 999),
        default=None,
        help="a --conditional run: the class to draw (default: a picture of images has one "
        "row per class)",
    )
    sample.add_argument(
        "--steps",
        type=whole_number(2, 1000),
        default=8,
        help="points along each --interpolate line",
    )
    _sampler_flag(sample, "vae: z from the prior or from an ex-post GMM of the codes")
    sample.add_argument(
        "--components", type=whole_number(1), default=10, help="components of the ex-post GMM"
    )
    sample.add_argument(
        "--temperature",
        type=positive_number,
        default=1.0,
        help="spread of the base distribution about its centres (1: as trained; below 1: "
        "nearer the modes, less varied)",
    )


def _sampler_flag(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--sampler", default="prior", choices=("prior", "gmm"), help=help)


def _eval_flags(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    """EvalOptions' flags (eval: all; bench: the seed, -k and --n-real), typed and checked
    once, where EvalOptions is built from what was given."""
    from .run import EvalOptions

    add_flags(parser, EvalOptions, only, EvalOptions.flags)


def _eval_given(args: argparse.Namespace) -> EvalOptions:
    """The EvalOptions of the flags given (the others at their defaults)."""
    from .run import EvalOptions

    names = {f.name for f in dataclasses.fields(EvalOptions)}
    return EvalOptions(**{k: v for k, v in vars(args).items() if k in names})


def _bench_parser(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("--data", required=True, help="data set name, as for train")
    bench.add_argument("--models", default="gmm,vae,gan", help="comma-separated models")
    bench.add_argument(
        "--budget-minutes", type=positive_number, default=2.0, help="training time per model"
    )
    bench.add_argument("--out", default=None, help="report folder (default bench-DATA)")
    _eval_flags(bench, ("seed", "k", "n_real"))
    bench.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    bench.add_argument("--data-dir", default=None)
    bench.add_argument(
        "--test-data", default=None, help="held-out data for a user's own --data (scored on)"
    )


def _experiment_parser(exp: argparse.ArgumentParser) -> None:
    from .experiments import EXPERIMENTS

    exp.add_argument("name", choices=sorted(EXPERIMENTS))
    exp.add_argument(
        "--out", default=None, help="results folder (default experiments/NAME, or NAME-xSCALE)"
    )
    exp.add_argument(
        "--quick", action="store_true", help="small budgets (for tests and a first look)"
    )
    exp.add_argument(
        "--jobs",
        type=whole_number(1, 64),
        default=1,
        help="runs trained at once, each in its own process",
    )
    exp.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    exp.add_argument("--data-dir", default=None, help="folder holding downloaded data sets")
    exp.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every run's training steps or epochs (e.g. 8 for longer runs)",
    )
    exp.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PART",
        help="run only this configuration, prior, model or data set (repeatable)",
    )


def _eval_parser(ev: argparse.ArgumentParser) -> None:
    ev.add_argument("run")
    _eval_flags(ev)


def _cmd_train(args: argparse.Namespace) -> None:
    from .run_folder import run_finished
    from .training.loop import fit

    cls = MODELS[args.model]
    skip = {"command", "model", "out", "config", "set"}
    given = {k: v for k, v in vars(args).items() if k not in skip}
    tcfg, mcfg = recipes.resolve_options(
        args.model, (TrainConfig, cls.Config), given, args.config, args.set
    )
    # a finished run that --resume names is left as it is: say so, rather than "wrote"
    finished = bool(tcfg.resume and args.out and run_finished(Path(args.out)))
    run = fit(args.model, tcfg, mcfg, args.out)
    if finished:
        dist.print0(f"{run.path}: finished already; nothing trained, its files left as they were")
    else:
        dist.print0(f"wrote {run.path} (model.safetensors, metrics.jsonl, samples.png)")


def _cmd_sample(args: argparse.Namespace) -> None:
    from . import pictures
    from .run import Run

    if args.out and Path(args.out).suffix not in (".png", ".npy"):
        raise PushforwardError(f"--out {args.out}: unknown file type; use FILE.png or FILE.npy")
    run = Run.load(args.run)
    picture = not args.out or Path(args.out).suffix == ".png"
    # a picture shows at most 64 images or 100,000 points: draw no more than it shows
    most = pictures.PICTURE_IMAGES if run.data.kind == "images" else pictures.PICTURE_POINTS
    shown = min(args.n, most) if picture else args.n
    if args.recon:
        pic = pictures.reconstructions(run, args.n, args.seed)
    elif args.interpolate:
        pic = pictures.interpolations(run, args.n, args.steps, args.seed)
    else:
        how = (args.seed, args.sampler, args.components, args.label, picture, args.temperature)
        pic = pictures.samples(run, shown, *how)
    out = Path(args.out) if args.out else None
    print(pictures.write(run, pic, out, (args.n, shown), args.seed, args.label, args.temperature))


def _cmd_eval(args: argparse.Namespace) -> None:
    from .run import Run
    from .run_folder import EVAL

    opts = _eval_given(args)  # checked before the run is read
    run = Run.load(args.run)
    res = run.score(opts)
    width = max(len(k) for k in res)
    for key, v in res.items():
        if isinstance(v, list):
            v = " ".join(f"{x:.3g}" for x in v)
        print(f"{key:<{width}}  {v:.4f}" if isinstance(v, float) else f"{key:<{width}}  {v}")
    print(f"wrote {run.path / EVAL}")


def _cmd_data(args: argparse.Namespace) -> None:
    from .data import check_data_dir, list_datasets

    check_data_dir(args.data_dir)
    rows = list_datasets(args.data_dir)
    fmt = "{:<14} {:<12} {:>8} {:>8}  {}"
    print(fmt.format("name", "shape", "train", "test", "source"))
    for r in rows:
        shape = "x".join(str(s) for s in r["shape"])  # type: ignore[attr-defined]
        n = lambda v: "-" if v is None else str(v)  # noqa: E731
        print(fmt.format(r["name"], shape, n(r["train"]), n(r["test"]), r["source"]))


def _cmd_bench(args: argparse.Namespace) -> None:
    from .reports import run_bench

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise PushforwardError(f"--models {args.models!r}: choose from {', '.join(MODELS)}")
    out = Path(args.out or f"bench-{safe_name(args.data, keep='-_')}")
    opts = _eval_given(args)
    path = run_bench(
        out,
        args.data,
        models,
        args.budget_minutes,
        seed=opts.seed,
        k=opts.k,
        n_real=opts.n_real,
        device=args.device,
        data_dir=args.data_dir,
        test_data=args.test_data,
    )
    print(f"wrote {path} and {out / 'report.json'}")


def _cmd_experiment(args: argparse.Namespace) -> None:
    from .experiments import Settings, run_experiment

    # a scaled run gets its own folder: in the default one it would retrain over the 1x runs
    default = args.name if args.scale == 1 else f"{args.name}-x{args.scale:g}"
    out = Path(args.out or Path("experiments") / default)
    settings = Settings(args.jobs, args.device, args.data_dir, args.scale, tuple(args.only))
    results = run_experiment(args.name, out, args.quick, settings)
    print(f"wrote {results.path} and the figures beside it")


def _cmd_explore(args: argparse.Namespace) -> None:
    from .explore import write_explorer

    print("wrote " + " and ".join(map(str, write_explorer(args.run, args.out, args.gif))))


def _cmd_demo(args: argparse.Namespace) -> None:
    from .reports import run_demo

    path = run_demo(Path(args.out))
    print(f"wrote {path}")


COMMANDS = {
    "bench": _cmd_bench,
    "experiment": _cmd_experiment,
    "train": _cmd_train,
    "sample": _cmd_sample,
    "eval": _cmd_eval,
    "data": _cmd_data,
    "demo": _cmd_demo,
    "explore": _cmd_explore,
    "compare": lambda args: compare.run_compare(args),
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except PushforwardError as e:
        print("error: " + " ".join(str(e).splitlines()), file=sys.stderr)
        return 2
    except Interrupted as e:
        name = signal.Signals(e.signum).name
        if dist.is_main():  # one line, not one per torchrun rank
            how = (
                f"at step {e.step}: checkpoint written; continue with the same command plus "
                "--resume"
                if args.command == "train"
                else f"; `pushforward {args.command}` starts over when you run it again"
            )
            print(f"interrupted by {name} {how}".replace(" ;", ";"), file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, MemoryError) as e:  # an allocation refused outside training's own
        oom = out_of_memory(
            e,
            "cpu",
            f"pushforward {args.command}",
            "free memory, or ask for fewer samples or examples (-n, --n-fake, --n-real)",
        )
        if oom is None:
            raise
        print(f"error: {oom}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
