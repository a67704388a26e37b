"""Command line: ``python -m xxmpy report SCRIPT.py --out report.html``.

Runs the script (as ``python SCRIPT.py`` would), takes a fitted model it
leaves behind and writes the HTML report of it.
"""
import argparse
import runpy
import sys
from pathlib import Path

from .lmm.result import LmerResult
from .api.model import Model
from .results.fit_result import FitResult


def _core(fit):
    """The xxM FitResult of a fit (an lmer result holds one)."""
    return fit.fit_result if isinstance(fit, LmerResult) else fit


def fits_in(namespace):
    """name -> fit for every fit a script left behind, in definition order: FitResults,
    lmer results, and fitted Models (as their FitResult); each fit once."""
    found, seen = {}, set()
    for name, obj in namespace.items():
        if name.startswith("_"):
            continue
        fit = obj.result if isinstance(obj, Model) else obj
        if not isinstance(fit, (FitResult, LmerResult)):
            continue
        if id(_core(fit)) not in seen:
            seen.add(id(_core(fit)))
            found[name] = fit
    return found


def report_command(args):
    script = Path(args.script)
    if not script.is_file():
        sys.exit(f"xxmpy report: no script at '{script}'.")
    sys.path.insert(0, str(script.resolve().parent))
    namespace = runpy.run_path(str(script), run_name="__main__")
    fits = fits_in(namespace)
    if not fits:
        sys.exit(f"xxmpy report: '{script}' left no fitted model behind (a FitResult, a "
                 f"fitted Model or an lmer result at the top level of the script).")
    if args.fit is None:
        name = next(iter(fits))
    elif args.fit in fits:
        name = args.fit
    else:
        sys.exit(f"xxmpy report: '{script}' has no fit named '{args.fit}'; its fits are: "
                 f"{', '.join(fits)}.")
    fit = fits[name]
    if args.ci and _core(fit).profile is None:
        fit.profile_ci(level=args.level, progress=True)
    out = Path(args.out or script.with_suffix(".html").name)
    fit.report(out, title=args.title)
    print(f"xxmpy report: wrote {out} (the fit '{name}' of {script}; fits found: "
          f"{', '.join(fits)})")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m xxmpy")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "report", help="run a model script and write an HTML report",
        description="Runs SCRIPT as Python (all of it, with your permissions, like "
                    "'python SCRIPT') and writes the HTML report of a fit it leaves behind. "
                    "Run only scripts you trust.")
    rep.add_argument("script", help="a Python script that fits a model; it is executed")
    rep.add_argument("--out", help="the HTML file to write (default: SCRIPT.html here)")
    rep.add_argument("--fit", help="the variable holding the fit to report "
                                   "(default: the first fit the script defines)")
    rep.add_argument("--ci", action="store_true",
                     help="compute profile-likelihood CIs first when the fit has none")
    rep.add_argument("--level", type=float, default=0.95, help="CI level with --ci")
    rep.add_argument("--title", help="page title (default: the model's name)")
    args = parser.parse_args(argv)
    if args.command == "report":
        report_command(args)


if __name__ == "__main__":
    main()
