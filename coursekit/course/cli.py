"""``coursekit`` command line: the instructor's release tool.

    coursekit release            rebuild solutions/*/*.ipynb from their .py sources and notebooks/ from those
    coursekit release --check    exit 1, listing what is out of date, instead of writing
    coursekit release 01-backprop --db   one stage, also recorded in gradebook.db (needed by autograde)
    coursekit stages             list the stages
    coursekit handout DIR        write the students' repository (releases, library, README) into DIR
    coursekit data fetch [NAME]  fetch datasets into the cache (once, online) and build the offline retrieval sets
                                 (`instance-sets`); `coursekit data where` prints the cache folder
    coursekit data fetch roxford5k rparis6k   the Revisited Oxford/Paris images (gigabytes): only when named
    coursekit autograde ASSIGNMENT [--jobs N] [nbgrader options]   nbgrader autograde, its failures reported, then
                                 the audit; --jobs N grades N submissions at a time, one process writing the gradebook
    coursekit report ASSIGNMENT [--output FILE]   the class report: one HTML page of scores, failed exercises,
                                 integrity flags, grading faults and time per submission, from the gradebook
    coursekit audit ASSIGNMENT   the integrity audit of every submission: a table of findings
    coursekit lab [FOLDER] [JupyterLab options]   start the course: JupyterLab with the course's settings
    coursekit explore [PART] [Voilà options]   a lecture part's explorers as a page with no code (all parts
                                 without PART; `coursekit explore --list` names them)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coursekit import course


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="coursekit", description="Deep learning for vision: course tools")
    parser.add_argument("--root", type=Path, default=None, help="course root (default: found from the cwd)")
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="regenerate the student notebooks from solutions/")
    rel.add_argument("stages", nargs="*", help="stage ids (default: all)")
    rel.add_argument("--check", action="store_true", help="only report what is out of date; exit 1 if anything is")
    rel.add_argument("--db", action="store_true", help="also record the assignments in the gradebook")
    rel.add_argument("--force", action="store_true", help="overwrite released notebooks even if they hold answers")
    sub.add_parser("stages", help="list the stages in lecture order")
    out = sub.add_parser("handout", help="write the students' repository: releases, library, README; no solutions")
    out.add_argument("folder", type=Path, help="a new or empty folder outside the course repository")
    grade = sub.add_parser("autograde", help="run nbgrader autograde, report any submission it failed, then the audit")
    grade.add_argument("assignment")
    grade.add_argument("--jobs", "-j", type=int, default=1,
                       help="grade this many submissions at a time (default 1: one nbgrader run, one after another)")
    report = sub.add_parser("report", help="the class report of an assignment: one HTML page from the gradebook")
    report.add_argument("assignment")
    report.add_argument("--output", "-o", type=Path, default=None,
                        help="where to write it (default: integrity/ASSIGNMENT/report.html in the course)")
    audit = sub.add_parser("audit", help="the integrity audit of every submission of an assignment")
    audit.add_argument("assignment")
    data = sub.add_parser("data", help="datasets: fetch them into the cache (once, online)")
    data.add_argument("action", choices=["fetch", "where"])
    data.add_argument("names", nargs="*", help="datasets to fetch (default: all but the opt-in roxford5k and rparis6k, "
                      "gigabytes of images fetched only when named)")
    lab = sub.add_parser("lab", help="start the course: JupyterLab on notebooks/ with the settings the course needs")
    lab.add_argument("folder", nargs="?", default=None, help="the folder to open (default: notebooks/ if here)")
    lab.add_argument("--settings-only", action="store_true",
                     help="only write the course's JupyterLab settings into this environment (for a hub image)")
    explore = sub.add_parser("explore", help="a lecture part's explorers as a page with no code showing (Voilà), "
                             "for a class; options after the part go to Voilà (--port=8870, --no-browser)")
    explore.add_argument("part", nargs="?", default=None,
                         help="nets, convolution, retrieval or graphs, or a stage (04-mnist, 04); default: all parts")
    explore.add_argument("--list", action="store_true", help="only list the parts and the stages they show")
    args, extra = parser.parse_known_args(argv)
    if args.command == "lab":
        from coursekit.course import lab as lab_module

        return lab_module.lab(args.folder, extra, settings_only=args.settings_only)
    if args.command == "explore":
        from coursekit.course import apps

        return apps.explore(args.part, extra, list_only=args.list)
    if extra and args.command != "autograde":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "data":
        return _data(args)

    try:
        root = course.find_root(args.root)
        if args.command == "stages":
            print("\n".join(course.stages(root)))
            return 0
        if args.command == "audit":
            from coursekit.course import audit as audit_module

            rows = audit_module.audit_assignment(root, args.assignment)
            print(audit_module.table(rows))
            return 0
        if args.command == "autograde":
            from coursekit.course.grade import autograde

            return autograde(root, args.assignment, extra, jobs=args.jobs)
        if args.command == "report":
            from coursekit.course.report import write_report

            path = write_report(root, args.assignment, args.output)
            print(f"wrote the class report of {args.assignment}: {path}")
            return 0
        if args.command == "handout":
            from coursekit.course.handout import handout

            written = handout(root, args.folder)
            print(f"wrote {len(written)} files into {args.folder.resolve()}: publish that folder to students")
            return 0
        if args.check:
            problems = course.stale(root, args.stages)
            for line in problems:
                print(line)
            if problems:
                print("run `coursekit release` to regenerate", file=sys.stderr)
                return 1
            print("the releases are in sync with solutions/")
            return 0
        for path in course.release(root, args.stages, db=args.db, force=args.force):
            print(f"wrote {path.relative_to(root)}")
        return 0
    except (FileNotFoundError, FileExistsError, ValueError, RuntimeError) as err:
        print(f"coursekit: {err}", file=sys.stderr)
        return 2


INSTANCE_SETS = "instance-sets"  # stage 07's offline retrieval benchmark, in both budgets' sizes


def _data(args) -> int:
    from coursekit import data
    from coursekit.data import revisited

    if args.action == "where":
        print(data.cache_dir())
        return 0
    try:
        for name in args.names or [*sorted(data.REGISTRY), INSTANCE_SETS]:
            if name == INSTANCE_SETS:  # generated here from shipped photos, not downloaded: build them once
                from coursekit.data.instances import instance_set

                for size in ("fast", "full"):
                    for split in ("test", "train"):
                        built = instance_set(split, size)
                        print(f"{INSTANCE_SETS}: {built.name} ready ({len(built.images)} database images, "
                              f"{len(built.queries)} queries)")
                continue
            if name in revisited.SOURCES:  # opt-in: never part of the default list above
                ds = revisited.fetch_revisited(name)
                print(f"{name}: ready in {ds.root / name} ({len(ds.images)} database images, {len(ds.queries)} queries)")
                continue
            paths = data.fetch(name)
            print(f"{name}: ready in {data.cache_dir() / name} ({', '.join(p.name for p in paths.values())})")
    except (data.DataError, ValueError) as err:
        print(f"coursekit: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
