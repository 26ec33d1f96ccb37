"""The ``mldeploy`` command line.

Exit codes (the brief's contract): 0 the service is live or nothing changed, 1 a stage failed,
2 the spec is invalid. With ``--json`` the last line of stdout is one JSON object (the run
summary); progress lines then go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO, cast

from mldeploy.spec.targets import TARGET_KINDS
from mldeploy.summary import STAGES, RunSummary

if TYPE_CHECKING:
    from pathlib import Path

    from prefect.client.schemas.objects import State

    from mldeploy.adapters.docker_engine import DockerEngine
    from mldeploy.spec import ServiceSpec

EXIT_OK, EXIT_STAGE_FAILED, EXIT_SPEC_INVALID = 0, 1, 2
SYMBOLS = {"running": "…", "completed": "✓", "cached": "↺", "failed": "✗", "skipped": "-"}


def _print_diagnosis(summary: dict[str, Any], out: TextIO) -> None:
    found = summary.get("diagnosis")
    if not found:
        return
    print(f"\n✗ {summary.get('failed_stage')} failed: {found['summary']}  [{found['code']}]", file=out)
    detail = str(found.get("detail", "")).rstrip()
    if detail:
        print("  evidence:", file=out)
        for line in detail.splitlines()[-25:]:
            print(f"    {line}", file=out)
    print(f"  fix: {found['hint']}", file=out)
    if summary.get("rolled_back_to"):
        print(f"  rolled back: revision {summary['rolled_back_to']}'s template serves again", file=out)


def _run_locally(args: argparse.Namespace, human: TextIO) -> dict[str, Any]:
    from flows.deploy_model import deploy_model
    from mldeploy import progress

    def report(stage: str, state: str, seconds: float) -> None:
        # write(), not print(): Prefect may capture print() inside a flow run
        if state != "running":
            human.write(f"  {SYMBOLS.get(state, '?')} {stage:<9} {state} in {seconds:.1f} s\n")
            human.flush()

    def note(stage: str, text: str) -> None:
        if args.verbose:
            return  # the Prefect log lines already show it
        human.write(f"      {text[:110]}\n")
        human.flush()

    progress.set_reporter(report, note)
    rollback = getattr(args, "rollback", None)
    state = cast(
        "State[Any]",
        deploy_model(
            spec_path=os.path.abspath(args.spec),
            target=args.target,
            force=args.force,
            no_cache=args.no_cache,
            from_stage=args.from_stage,
            allowed_roots=[os.path.abspath(root) for root in args.allow_root],
            allow_direct_urls=args.allow_direct_urls,
            rollback_image=rollback.image if rollback else None,
            rollback_models=rollback.models if rollback else "",
            debug_pipeline_port=getattr(args, "debug_pipeline", None),
            debug_wait_seconds=getattr(args, "debug_wait", 60.0),
            return_state=True,
        ),
    )
    data: Any = state.result(raise_on_failure=False)
    if isinstance(data, dict):
        return data
    return RunSummary.crashed(f"the flow run crashed: {data!r}", str(state.state_details.flow_run_id or "")).to_dict()


def _run_remotely(args: argparse.Namespace, human: TextIO) -> dict[str, Any]:
    from mldeploy.remote import default_idempotency_key, trigger_and_wait

    parameters: dict[str, Any] = {"spec_path": args.spec, "force": args.force, "no_cache": args.no_cache}
    if args.allow_root:
        parameters["allowed_roots"] = list(args.allow_root)
    if args.allow_direct_urls:
        parameters["allow_direct_urls"] = True
    if args.target:
        parameters["target"] = args.target
    if args.from_stage:
        parameters["from_stage"] = args.from_stage
    if args.debug_pipeline is not None:
        parameters.update(debug_pipeline_port=args.debug_pipeline, debug_wait_seconds=args.debug_wait)
    key = args.idempotency_key or default_idempotency_key(args.remote, args.spec)

    def report(line: str) -> None:
        human.write(f"  {line}\n")
        human.flush()

    run = trigger_and_wait(args.remote, parameters, idempotency_key=key, timeout=args.timeout, on_state=report)
    if run.summary is not None:
        return run.summary
    return RunSummary.crashed(f"the flow run ended {run.state} without a summary", run.flow_run_id).to_dict()


def _load(args: argparse.Namespace) -> ServiceSpec:
    from mldeploy.settings import Settings
    from mldeploy.spec import load_spec

    limits = Settings.load().limits(args.allow_root, args.allow_direct_urls)
    return load_spec(args.spec, target_override=getattr(args, "target", None), limits=limits)


def cmd_deploy(args: argparse.Namespace) -> int:
    from mldeploy.errors import SpecError

    human = sys.stderr if args.json else sys.stdout
    # Fail fast on a bad spec, before any engine or Prefect start-up (the flow validates again).
    # A remote run resolves the path on the worker; check it here only when it exists here too.
    if not args.remote or os.path.exists(args.spec):
        try:
            _load(args)
        except SpecError as exc:
            print(str(exc), file=human)
            if args.json:
                assert exc.diagnosis is not None
                refused = RunSummary.refused_spec(exc.diagnosis.to_dict(), [p.to_dict() for p in exc.problems])
                print(json.dumps(refused.to_dict()))
            return EXIT_SPEC_INVALID
    if not args.verbose:
        # a quiet terminal (the progress lines say enough), while the run's log in the UI keeps every line
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = os.path.abspath(args.kubeconfig)  # read by the run's Kubernetes target
    if args.debug_pipeline is not None:
        from pathlib import Path

        from mldeploy.debugging import PIPELINE_CONFIGURATION, attach_configuration, write_launch

        _, said = write_launch(Path.cwd(), attach_configuration(PIPELINE_CONFIGURATION, args.debug_pipeline))
        human.write(f"  {said}\n")
        human.flush()
    summary = _run_remotely(args, human) if args.remote else _run_locally(args, human)
    return _report(args, summary, human)


def _report(args: argparse.Namespace, summary: dict[str, Any], human: TextIO) -> int:
    """A run's end, as the brief's contract has it: the outcome, the flow run, notices, the JSON line, the code."""
    if summary["status"] == "failed":
        _print_diagnosis(summary, human)
    elif summary["status"] == "noop":
        print(f"= nothing changed: {summary.get('service')} is live at {summary['endpoint']}", file=human)
    else:
        print(
            f"✓ {summary.get('service')} is live at {summary['endpoint']}"
            + (f" (model {summary['model']['name']}:{summary['model']['version']})" if summary.get("model") else ""),
            file=human,
        )
    if summary.get("ui_url"):
        print(f"  flow run: {summary['ui_url']}", file=human)
    for notice in summary.get("notices", []):
        print(f"  note: {notice}", file=human)
    if args.json:
        print(json.dumps(summary))
    if summary["status"] in ("succeeded", "noop"):
        return EXIT_OK
    code = (summary.get("diagnosis") or {}).get("code")
    return EXIT_SPEC_INVALID if code == "spec_invalid" else EXIT_STAGE_FAILED


def cmd_validate(args: argparse.Namespace) -> int:
    from mldeploy.errors import SpecError

    try:
        spec = _load(args)
    except SpecError as exc:
        if args.json:
            print(json.dumps({"valid": False, "problems": [p.to_dict() for p in exc.problems]}))
        else:
            print(str(exc))
        return EXIT_SPEC_INVALID
    if args.json:
        print(json.dumps({"valid": True, "service": spec.name, "notices": list(spec.notices)}))
    else:
        models = ", ".join(m.name for m in spec.all_models)
        print(f"{spec.path}: valid (service {spec.name}, model {models}, target {spec.target.kind})")
        for notice in spec.notices:
            print(f"  note: {notice}")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace) -> int:
    from mldeploy.spec.reference import markdown_reference, schema_text

    print(markdown_reference() if args.markdown else schema_text(), end="")
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from mldeploy.errors import PermanentError
    from mldeploy.models import ModelRegistry
    from mldeploy.settings import Settings

    registry = ModelRegistry(Settings.load().home)
    if args.models_command == "list":
        rows = [m for name in registry.names() for m in registry.versions(name)]
        if args.json:
            print(json.dumps([m.to_dict() for m in rows]))
            return EXIT_OK
        if not rows:
            print("no models registered yet")
        for m in rows:
            print(f"{m.name:30} {m.version:>4}  {m.sha256[:12]}  {m.size:>12}  {m.created}  {m.basename}")
        return EXIT_OK
    try:
        model = registry.get(args.name, args.version)
    except PermanentError as exc:
        print(exc, file=sys.stderr)
        return EXIT_STAGE_FAILED
    print(json.dumps(model.to_dict(), indent=2))
    return EXIT_OK


def _operated_target(args: argparse.Namespace) -> Any:
    """The target a `logs` or `delete` names: the target section of ``--spec``, a Kubernetes namespace (and
    context), an ACI resource group (public cloud; other clouds through ``--spec``), or local."""
    from mldeploy.spec import AciTarget, KubernetesTarget, LocalTarget
    from mldeploy.targets import make_target

    if args.spec:
        return make_target(_load(args).target, kubeconfig=args.kubeconfig)
    if args.target == "kubernetes":
        section = KubernetesTarget(kind="kubernetes", namespace=args.namespace, context=args.context)
        return make_target(section, kubeconfig=args.kubeconfig)
    if args.target == "aci":
        if not args.resource_group:
            raise SystemExit("mldeploy: --target aci needs --resource-group (or --spec SPEC)")
        return make_target(
            AciTarget.model_validate(
                {"kind": "aci", "resource_group": args.resource_group, "subscription_id": args.subscription}
            )
        )
    return make_target(LocalTarget())


def _status_targets(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """The one target --spec/--target names, else every target these options reach."""
    from mldeploy.status import reachable_targets

    if args.spec or args.target:
        kind = _load(args).target.kind if args.spec else args.target
        return [(str(kind), lambda: _operated_target(args))]
    return reachable_targets(
        kubeconfig=args.kubeconfig,
        context=args.context,
        namespace=args.namespace,
        resource_group=args.resource_group,
        subscription=args.subscription,
    )


def cmd_status(args: argparse.Namespace) -> int:
    from mldeploy.history import table
    from mldeploy.status import COLUMNS, short_image, status_rows

    notes: list[str] = []
    rows = status_rows(args.name, _status_targets(args), notes)
    if args.json:
        print(json.dumps({"services": rows, "notes": notes}))
    else:
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if not rows:
            print(f"nothing deployed as {args.name!r}" if args.name else "no services deployed by mldeploy")
        else:
            shown = [{**row, "image": short_image(row["image"])} for row in rows]
            print(table(shown, COLUMNS))
    return EXIT_OK if rows or not args.name else EXIT_STAGE_FAILED


def cmd_history(args: argparse.Namespace) -> int:
    from mldeploy.history import table
    from mldeploy.remote import read_history
    from mldeploy.status import short_image

    found = read_history(args.name)
    if args.json:
        print(json.dumps([d.to_dict() for d in found]))
        return EXIT_OK
    if not found:
        print(f"no deploys of {args.name!r} on the Prefect server")
        return EXIT_OK
    rows = [{**d.to_dict(), "image": short_image(d.image), "stage": d.failed_stage} for d in found]
    print(table(rows, ("number", "when", "status", "stage", "models", "image", "trigger", "flow_run_name")))
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    """Bring an earlier deploy's image back through the pipeline (deploy and smoke run; nothing is built)."""
    from mldeploy.history import rollback_choice
    from mldeploy.remote import read_history
    from mldeploy.spec import load_spec
    from mldeploy.targets import make_target

    found = read_history(args.name)
    if not found:
        print(f"mldeploy: no deploys of {args.name!r} on the Prefect server: nothing to roll back to", file=sys.stderr)
        return EXIT_STAGE_FAILED
    spec_path = args.spec or found[-1].spec_path
    target_kind = args.target or found[-1].target or None
    try:
        spec = load_spec(spec_path, target_override=target_kind)
        live = make_target(spec.target, kubeconfig=args.kubeconfig).live(args.name)
        chosen = rollback_choice(found, live, args.to)
    except (ValueError, OSError) as exc:
        print(f"mldeploy: cannot roll {args.name} back: {exc}", file=sys.stderr)
        return EXIT_STAGE_FAILED
    human = sys.stderr if args.json else sys.stdout
    human.write(
        f"rolling {args.name} back to deploy {chosen.number} ({chosen.when}, {chosen.models}): {chosen.image}\n"
    )
    args.spec, args.target = spec_path, target_kind
    args.force, args.no_cache, args.from_stage, args.allow_root, args.allow_direct_urls = False, False, None, [], False
    args.rollback = chosen
    summary = _run_locally(args, human)
    return _report(args, summary, human)


def _reload_once(spec: Any, target: Any, human: TextIO) -> dict[str, Any]:
    """One reload: refuse what cannot be reloaded, put the app files in, wait for readiness, smoke again."""
    import datetime
    import time

    from mldeploy.adapters.http_probe import HttpProbe
    from mldeploy.contract import AUTH_KEY_VARS, SCORE_PATH
    from mldeploy.reload import app_files, refusals
    from mldeploy.smoke import judge
    from mldeploy.spec import resolve_secrets
    from tasks.smoke import REQUEST_TIMEOUT_SECONDS, auth_headers

    started = time.perf_counter()
    live = target.live(spec.name)
    if live is None:
        return {"status": "failed", "reason": f"nothing serves as {spec.name!r} on the local target: deploy it first"}
    refused = refusals(spec, target.engine.image_labels(live.image) or {})
    if refused:
        return {"status": "refused", "reason": "; ".join(refused)}
    secrets = resolve_secrets(spec, os.environ)
    files = app_files(spec)
    when = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    marker = f"{len(files)} app file(s) of {spec.path} at {when}"
    target.reload(
        spec.name, {f.path: f.content for f in files}, marker, spec.deploy.health_timeout_seconds, secrets.values()
    )
    ready = time.perf_counter() - started
    probe = HttpProbe()
    headers = auth_headers({k: v for k, v in secrets.container.items() if k in AUTH_KEY_VARS})
    results = []
    for case in spec.smoke:
        reply = probe.send(live.endpoint + SCORE_PATH, case.http_request(), REQUEST_TIMEOUT_SECONDS, headers)
        results.append(judge(case, reply.status, reply.body, reply.seconds, reply.error))
    seconds = time.perf_counter() - started
    for result in results:
        problems = "" if result.passed else " — " + "; ".join(result.problems)
        mark = "✓" if result.passed else "✗"
        human.write(f"  {mark} {result.name}: {result.status} in {result.latency_ms:.0f} ms{problems}\n")
    passed = all(r.passed for r in results)
    return {
        "status": "reloaded" if passed else "smoke_failed",
        "service": spec.name,
        "files": [f.path for f in files],
        "ready_seconds": round(ready, 3),
        "seconds": round(seconds, 3),
        "endpoint": live.endpoint,
        "smoke": [r.row() for r in results],
    }


def _app_mtimes(spec: Any) -> dict[str, float]:
    from mldeploy.fingerprint import walk_files

    return {f.rel: f.real.stat().st_mtime_ns for f in walk_files(spec.app_source, spec.roots)}


def cmd_reload(args: argparse.Namespace) -> int:
    """The dev loop on the local target: edited app files live without a new image (``--watch``: on save)."""
    import time

    from mldeploy.errors import MldeployError, SpecError
    from mldeploy.targets import make_target

    human = sys.stderr if args.json else sys.stdout
    if not args.spec:
        from mldeploy.remote import read_history

        found = [d for d in read_history(args.name) if d.spec_path]
        if not found:
            print(f"mldeploy: no deploy of {args.name!r} on record: name its spec with --spec", file=sys.stderr)
            return EXIT_STAGE_FAILED
        args.spec = found[-1].spec_path
    try:
        spec = _load(args)
    except SpecError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_SPEC_INVALID
    if spec.name != args.name:
        print(f"mldeploy: {args.spec} describes {spec.name!r}, not {args.name!r}", file=sys.stderr)
        return EXIT_SPEC_INVALID
    if spec.target.kind != "local":
        print(
            f"mldeploy: reload works on the local target (the dev loop); {spec.name} is a {spec.target.kind} "
            "service: deploy it locally with --target local, or run mldeploy deploy",
            file=sys.stderr,
        )
        return EXIT_STAGE_FAILED
    target = make_target(spec.target)
    while True:
        try:
            result = _reload_once(spec, target, human)
        except MldeployError as exc:
            result = {"status": "failed", "reason": str(exc)}
        if args.json:
            print(json.dumps(result), flush=True)
        if result["status"] == "reloaded":
            human.write(
                f"✓ {spec.name} reloaded: live at {result['endpoint']} in {result['seconds']:.1f} s "
                "(diverged from its image until the next deploy)\n"
            )
        else:
            human.write(f"✗ {spec.name} not reloaded: {result.get('reason') or result['status']}\n")
        human.flush()
        if not args.watch:
            return EXIT_OK if result["status"] == "reloaded" else EXIT_STAGE_FAILED
        seen = _app_mtimes(spec)
        human.write(f"  watching {spec.app_source} (Ctrl-C to stop)\n")
        human.flush()
        while _app_mtimes(spec) == seen:
            time.sleep(args.interval)


def _pulled_image(args: argparse.Namespace, spec: Any) -> str:
    """The image `pull` means: a reference as given, the live image of the --spec's target, or the image of
    the service's newest successful deploy on record."""
    if "/" in args.what or "@" in args.what:
        return str(args.what)
    if spec is not None:
        from mldeploy.targets import make_target

        live = make_target(spec.target, kubeconfig=args.kubeconfig).live(args.what)
        if live is None:
            raise SystemExit(f"mldeploy: nothing serves as {args.what!r} on the {spec.target.kind} target")
        return live.image
    from mldeploy.remote import read_history

    found = [d for d in read_history(args.what) if d.status == "succeeded" and "@sha256:" in d.image]
    if not found:
        raise SystemExit(f"mldeploy: no deploy of {args.what!r} pushed an image to a registry; name the image")
    return found[-1].image


def cmd_pull(args: argparse.Namespace) -> int:
    """The guide's "download the image": pull a deployed image by digest and (``--run``) serve it locally,
    (``--debug``) under debugpy."""
    from mldeploy.adapters.docker_engine import DockerEngine
    from mldeploy.local_run import PULLED_LABEL
    from mldeploy.plan import spec_registry_auth
    from mldeploy.registry_auth import ANONYMOUS, RegistryAuth
    from mldeploy.spec import resolve_secrets
    from tasks.push import signed_in

    spec = _load(args) if args.spec else None
    image = _pulled_image(args, spec)
    auth: RegistryAuth = ANONYMOUS
    variables: dict[str, str] = {}
    if spec is not None:
        secrets = resolve_secrets(spec, os.environ)
        auth = spec_registry_auth(spec, secrets, os.environ)
        auth = signed_in(auth)
        variables = {**spec.variables, **secrets.container}
    engine = DockerEngine()
    print(f"pulling {image}", flush=True)
    engine.pull(image, auth, lambda line: print(f"  {line}", flush=True))
    if not (args.run or args.debug):
        print(f"✓ pulled {image}")
        return EXIT_OK
    name = spec.name if spec else image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
    if args.debug:
        return _serve_under_debugger(args, engine, image, name, variables, mount=None)
    return _serve(args, engine, image, f"mldeploy-pulled-{name}", PULLED_LABEL, variables, None, None)


def _serve(
    args: argparse.Namespace,
    engine: DockerEngine,
    image: str,
    name: str,
    label: str,
    variables: dict[str, str],
    extra_ports: dict[int, int | None] | None,
    mounts: dict[str, str] | None,
    ready_within: float | None = None,
) -> int:
    from mldeploy.local_run import run_locally

    started = run_locally(
        engine,
        image,
        name=name,
        label=label,
        environment=variables,
        port=args.port,
        ready_within=args.wait if ready_within is None else ready_within,
        extra_ports=extra_ports,
        read_only_mounts=mounts,
    )
    if not started.ready:
        print(started.log, file=sys.stderr)
        print(f"mldeploy: {name} did not become ready (its log is above); docker rm -f {name}", file=sys.stderr)
        return EXIT_STAGE_FAILED
    print(f"✓ {image} serves at {started.endpoint}/score (container {name}; stop it with: docker rm -f {name})")
    return EXIT_OK


def _serve_under_debugger(
    args: argparse.Namespace,
    engine: DockerEngine,
    image: str,
    service: str,
    variables: dict[str, str],
    mount: tuple[Path, str] | None,
) -> int:
    """Run ``image`` plus debugpy on 127.0.0.1 (scoring port and debug port), with the attach configuration in
    ``.vscode/launch.json`` of the current folder."""
    from pathlib import Path

    from mldeploy.debugging import (
        ENV_DEBUG_WAIT,
        SCORING_PORT,
        attach_configuration,
        path_mapping,
        scoring_configuration_name,
        write_launch,
    )
    from mldeploy.local_run import DEBUG_LABEL, debug_image
    from mldeploy.settings import Settings

    tag = debug_image(engine, image, Settings.load().home, lambda line: print(f"  {line}"))
    mappings = [path_mapping(mount)] if mount else None
    configuration = attach_configuration(scoring_configuration_name(service), args.debug_port, mappings)
    _, said = write_launch(Path.cwd(), configuration)
    print(f"  {said}")
    print(
        f"  attach VS Code ('{configuration['name']}', 127.0.0.1:{args.debug_port}) now: the scoring process "
        f"waits up to {args.debug_wait:g} s for it, then starts either way",
        flush=True,
    )
    name = f"mldeploy-debug-{service}"
    mounts = {str(mount[0]): mount[1]} if mount else None
    code = _serve(
        args,
        engine,
        tag,
        name,
        DEBUG_LABEL,
        {**variables, ENV_DEBUG_WAIT: f"{args.debug_wait:g}"},
        {SCORING_PORT: args.debug_port},
        mounts,
        ready_within=args.debug_wait + args.wait,
    )
    if code == EXIT_OK:
        print(f"  debugger: 127.0.0.1:{args.debug_port}" + (f"; after an edit: docker restart {name}" if mount else ""))
    return code


def cmd_debug(args: argparse.Namespace) -> int:
    """The troubleshooting guide's debug loop: the spec's image (built as the build stage builds it) plus
    debugpy, its local source mounted over the app, VS Code's attach configuration written."""
    from mldeploy.adapters.docker_engine import DockerEngine
    from mldeploy.debugging import source_mount
    from mldeploy.errors import MldeployError, SpecError
    from mldeploy.spec import resolve_secrets
    from tasks.build import build_image
    from tasks.plan import build_plan
    from tasks.register import register_model

    try:
        spec = _load(args)
        secrets = resolve_secrets(spec, os.environ)
    except SpecError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_SPEC_INVALID
    engine = DockerEngine()
    try:
        print(f"building {spec.name} as the build stage does", flush=True)
        registered = register_model.fn(spec)
        plan = build_plan(spec, registered.models, secrets, engine)
        built = build_image.fn(spec, registered.models, plan, engine)
        variables = {**spec.variables, **secrets.container}
        return _serve_under_debugger(args, engine, built.ref, spec.name, variables, source_mount(spec.app_source))
    except MldeployError as exc:
        print(f"mldeploy: {exc}", file=sys.stderr)
        return EXIT_STAGE_FAILED


def cmd_logs(args: argparse.Namespace) -> int:
    from mldeploy.errors import MldeployError

    try:
        target = _operated_target(args)
        for chunk in target.logs(args.name, tail=args.tail, previous=args.previous, follow=args.follow):
            print(chunk, end="", flush=True)
    except MldeployError as exc:
        print(exc, file=sys.stderr)
        return EXIT_STAGE_FAILED
    return EXIT_OK


def cmd_delete(args: argparse.Namespace) -> int:
    from mldeploy.errors import MldeployError

    try:
        removed = _operated_target(args).delete(args.name)
    except MldeployError as exc:
        print(exc, file=sys.stderr)
        return EXIT_STAGE_FAILED
    print(f"removed {', '.join(removed)}" if removed else f"nothing deployed as {args.name!r}")
    return EXIT_OK


def cmd_render(args: argparse.Namespace) -> int:
    """What a deploy of SPEC sends: the Kubernetes objects as YAML, or the ACI container group as JSON
    (secret values elided)."""
    from mldeploy.errors import SpecError
    from mldeploy.spec import AciTarget, KubernetesTarget

    try:
        spec = _load(args)
    except SpecError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_SPEC_INVALID
    if isinstance(spec.target, KubernetesTarget):
        print(f"# {spec.name}: what 'mldeploy deploy' applies (the image digest and fingerprint are set then)")
        print(_render_kubernetes(spec, spec.target), end="")
        return EXIT_OK
    if isinstance(spec.target, AciTarget):
        print(_render_aci(spec, spec.target), end="")
        return EXIT_OK
    print(
        f"{spec.path}: target.kind is {spec.target.kind}; render needs --target kubernetes or --target aci",
        file=sys.stderr,
    )
    return EXIT_SPEC_INVALID


def _render_kubernetes(spec: Any, section: Any) -> str:
    from mldeploy.manifests import KubeInputs, render, to_yaml

    repository = f"{spec.registry.url}/{spec.name}" if spec.registry else spec.name
    inputs = KubeInputs(
        service=spec.name,
        section=section,
        image=f"{repository}:DIGEST-AT-DEPLOY",
        fingerprint="<deploy fingerprint>",
        model_label=",".join(f"{m.name}:{m.version or 'next'}" for m in spec.all_models),
        environment=dict(spec.variables),
        secret_environment=dict.fromkeys(spec.secrets, ""),
        startup_seconds=spec.deploy.health_timeout_seconds,
        progress_deadline_seconds=int(max(60, spec.deploy.health_timeout_seconds * 2)),
    )
    return to_yaml(render(inputs))


def _render_aci(spec: Any, section: Any) -> str:
    """The body of PUT .../containerGroups/NAME (JSON has no comments: the deploy-time values are named)."""
    from mldeploy.aci import GroupInputs, RegistryCredential, container_group, to_json
    from mldeploy.contract import AUTH_KEY_VARS

    repository = f"{spec.registry.url}/{spec.name}" if spec.registry else spec.name
    registry = None
    if spec.registry is not None and spec.registry.signs_in_with_entra and section.registry_identity:
        registry = RegistryCredential(spec.registry.url.split("/", 1)[0], identity=section.registry_identity)
    elif spec.registry is not None and spec.registry.username:
        registry = RegistryCredential(spec.registry.url.split("/", 1)[0], spec.registry.username, "")
    inputs = GroupInputs(
        service=spec.name,
        group=f"{spec.name}-<revision>",
        dns_label=section.dns_name_label or spec.name,
        location=section.location or "<the resource group's location>",
        section=section,
        image=f"{repository}@sha256:<digest at deploy>",
        fingerprint="<deploy fingerprint>",
        environment=dict(spec.variables),
        secret_environment=dict.fromkeys(spec.secrets, ""),
        auth_keys=dict.fromkeys(AUTH_KEY_VARS, "") if section.auth_enabled else {},
        registry=registry,
        startup_seconds=spec.deploy.health_timeout_seconds,
    )
    return to_json(container_group(inputs))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mldeploy", description="Deploy scoring services, stage by stage.")
    sub = root.add_subparsers(dest="command", required=True)
    deploy = sub.add_parser("deploy", help="deploy a service spec")
    deploy.add_argument("spec")
    deploy.add_argument("--target", choices=TARGET_KINDS, help="override target.kind")
    deploy.add_argument("--json", action="store_true", help="print the run summary as JSON on the last line")
    deploy.add_argument("--force", action="store_true", help="deploy even when nothing changed")
    deploy.add_argument("--no-cache", action="store_true", help="rebuild every image layer (implies --force)")
    deploy.add_argument(
        "--from-stage",
        choices=STAGES,
        help="re-execute this stage and every later one instead of reusing finished stages",
    )
    deploy.add_argument("--verbose", "-v", action="store_true", help="show every Prefect log line")
    deploy.add_argument(
        "--remote",
        metavar="DEPLOYMENT",
        help="run on the Prefect server's workers through this deployment (e.g. 'ci' = deploy-model/ci) and wait; "
        "SPEC is then the path as the worker sees it (relative to its checkout)",
    )
    deploy.add_argument(
        "--idempotency-key",
        help="with --remote: triggers with the same key make one run (default: the CI commit, e.g. $GITHUB_SHA)",
    )
    deploy.add_argument("--timeout", type=float, default=3600, help="with --remote: seconds to wait for the end")
    deploy.add_argument(
        "--debug-pipeline",
        nargs="?",
        type=int,
        const=5679,
        metavar="PORT",
        help="wait for VS Code to attach to the pipeline's process on 127.0.0.1:PORT (5679) before the first stage; "
        "writes the attach configuration into .vscode/launch.json",
    )
    deploy.add_argument(
        "--debug-wait", type=float, default=60.0, help="with --debug-pipeline: seconds to wait for a debugger"
    )
    deploy.set_defaults(func=cmd_deploy)
    validate = sub.add_parser("validate", help="check a service spec without deploying")
    validate.add_argument("spec")
    validate.add_argument("--json", action="store_true")
    validate.add_argument("--target", choices=TARGET_KINDS, help="validate as if target.kind were this")
    validate.set_defaults(func=cmd_validate)
    for command in (deploy, validate):
        command.add_argument(
            "--allow-root",
            action="append",
            default=[],
            metavar="DIR",
            help="a folder outside the spec's own that its paths may name (repeatable; a spec cannot allow it)",
        )
        command.add_argument(
            "--allow-direct-urls",
            action="store_true",
            help="let requirements name a URL or local path (this machine fetches them; a spec cannot allow it)",
        )
    schema = sub.add_parser("schema", help="print the JSON Schema of service.yaml (or its key reference)")
    schema.add_argument("--markdown", action="store_true", help="the key reference table instead (README)")
    schema.set_defaults(func=cmd_schema)
    models = sub.add_parser("models", help="the model registry")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    listing = models_sub.add_parser("list")
    listing.add_argument("--json", action="store_true")
    show = models_sub.add_parser("show")
    show.add_argument("name")
    show.add_argument("--version", type=int)
    models.set_defaults(func=cmd_models)
    logs = sub.add_parser("logs", help="the log of a deployed service")
    logs.add_argument("name")
    logs.add_argument("--tail", type=int, default=200)
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing as the service logs")
    logs.add_argument("--previous", action="store_true", help="the instance before the last restart or crash")
    logs.set_defaults(func=cmd_logs)
    delete = sub.add_parser("delete", help="remove a deployed service (every object mldeploy made for it)")
    delete.add_argument("name")
    delete.set_defaults(func=cmd_delete)
    status = sub.add_parser("status", help="what serves where: every service mldeploy deployed, or NAME")
    status.add_argument("name", nargs="?")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    history = sub.add_parser("history", help="the deploys of a service (from the Prefect server)")
    history.add_argument("name")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)
    rollback = sub.add_parser("rollback", help="run an earlier deploy's image again (deploy and smoke only)")
    rollback.add_argument("name")
    rollback.add_argument(
        "--to",
        type=int,
        help="the deploy number (mldeploy history NAME); default: the newest "
        "successful deploy of another image than the live one",
    )
    rollback.add_argument(
        "--spec", help="the spec whose configuration and smoke requests apply (default: the one that deploy used)"
    )
    rollback.add_argument("--target", choices=TARGET_KINDS, help="override target.kind")
    rollback.add_argument("--json", action="store_true")
    rollback.add_argument("--verbose", "-v", action="store_true")
    rollback.set_defaults(func=cmd_rollback)
    reload = sub.add_parser("reload", help="put edited app files (score.py...) into the running local service")
    reload.add_argument("name")
    reload.add_argument("--spec", help="the service's spec (default: the one its last deploy used)")
    reload.add_argument("--watch", action="store_true", help="reload again whenever an app file is saved")
    reload.add_argument("--interval", type=float, default=0.3, help=argparse.SUPPRESS)
    reload.add_argument("--json", action="store_true", help="one JSON line per reload")
    reload.set_defaults(func=cmd_reload, allow_root=[], allow_direct_urls=False, target=None)
    pull = sub.add_parser("pull", help="pull a deployed image by digest (NAME or IMAGE) and, with --run, serve it")
    pull.add_argument("what", metavar="NAME|IMAGE")
    pull.add_argument("--spec", help="the service's spec: its target's live image, its registry credentials")
    pull.add_argument("--run", action="store_true", help="run it on 127.0.0.1 with the scoring port published")
    pull.add_argument("--port", type=int, help="host port for --run (default: a free one)")
    pull.add_argument("--debug", action="store_true", help="run it under debugpy (see mldeploy debug)")
    pull.set_defaults(func=cmd_pull, allow_root=[], allow_direct_urls=False, target=None)
    debug = sub.add_parser(
        "debug", help="run the spec's image locally under debugpy, its source mounted, for VS Code to attach"
    )
    debug.add_argument("spec")
    debug.add_argument("--port", type=int, help="host port of the scoring endpoint (default: a free one)")
    debug.set_defaults(func=cmd_debug, allow_root=[], allow_direct_urls=False, target=None)
    for command in (pull, debug):
        command.add_argument("--wait", type=float, default=120.0, help="seconds to wait for /readyz")
        command.add_argument("--debug-port", type=int, default=5678, help="host port of the debugger (127.0.0.1)")
        command.add_argument(
            "--debug-wait", type=float, default=60.0, help="seconds the scoring process waits for a debugger"
        )
    for command in (logs, delete, status):
        command.add_argument("--target", choices=TARGET_KINDS, help="default: local, or the --spec's target")
        command.add_argument("--namespace", default="default", help="with --target kubernetes")
        command.add_argument("--context", help="with --target kubernetes: the kubeconfig context")
        command.add_argument("--resource-group", help="with --target aci")
        command.add_argument("--subscription", help="with --target aci (else AZURE_SUBSCRIPTION_ID)")
        command.add_argument("--spec", help="take the target from this spec's target section (any kind or cloud)")
        command.set_defaults(allow_root=[], allow_direct_urls=False)
    render = sub.add_parser(
        "render", help="print what a deploy sends: Kubernetes objects or the ACI container group (secrets elided)"
    )
    render.add_argument("spec")
    render.add_argument("--target", choices=TARGET_KINDS, help="override target.kind (kubernetes or aci)")
    render.set_defaults(func=cmd_render, allow_root=[], allow_direct_urls=False)
    for command in (deploy, logs, delete, render, status, rollback, pull):
        command.add_argument(
            "--kubeconfig", help="the cluster's kubeconfig (else KUBECONFIG, ~/.kube/config); never from the spec"
        )
    return root


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a stop request unwinds like Ctrl-C: the run ends Crashed, the deploy slot is freed


def _failure(args: argparse.Namespace, summary: RunSummary, code: int) -> int:
    """Every way the CLI can fail ends the same way: a message, and the JSON line under --json."""
    if getattr(args, "json", False):
        print(json.dumps(summary.to_dict()))
    return code


def _unreachable_prefect(exc: BaseException) -> str | None:
    """The Prefect API the run was to be recorded on, when it could not be reached (Prefect's client is httpx;
    its errors are recognised by name so the CLI imports no HTTP client)."""
    seen: BaseException | None = exc
    while seen is not None:
        kind = type(seen)
        if kind.__module__.startswith("httpx") and kind.__name__ in ("ConnectError", "ConnectTimeout"):
            return os.environ.get("PREFECT_API_URL") or "the temporary Prefect server"
        seen = seen.__cause__ or seen.__context__
    return None


def main(argv: Sequence[str] | None = None) -> int:
    import signal
    import traceback

    from mldeploy.errors import MldeployError

    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return int(args.func(args))
    except MldeployError as exc:  # an adapter said what failed; no traceback for the user
        print(f"mldeploy: {exc}", file=sys.stderr)
        found = exc.diagnosis.to_dict() if exc.diagnosis else None
        summary = RunSummary.crashed(str(exc), None)
        if found:
            summary.diagnosis = found
        return _failure(args, summary, EXIT_STAGE_FAILED)
    except KeyboardInterrupt:
        print("mldeploy: stopped; a rerun recovers whatever this run left half done", file=sys.stderr)
        return _failure(args, RunSummary.crashed("stopped by a signal (Ctrl-C or SIGTERM)", None), 130)
    except Exception as exc:  # never a bare traceback: say what, keep the details in a file
        api = _unreachable_prefect(exc)
        if api is not None:
            message = f"the Prefect API at {api} cannot be reached ({type(exc).__name__})"
            hint = "start it ('make server') or unset PREFECT_API_URL to run against a temporary server"
        else:
            message = f"internal error: {type(exc).__name__}: {exc}"
            hint = "this is a bug in mldeploy: the traceback is in the file named above"
        from mldeploy.redaction import redact
        from mldeploy.settings import Settings

        crash_log = Settings.load().home / "logs" / f"cli-crash-{os.getpid()}.log"
        crash_log.parent.mkdir(parents=True, exist_ok=True)
        crash_log.write_text(traceback.format_exc())
        print(f"mldeploy: {redact(message, [])}\n  details: {crash_log}\n  fix: {hint}", file=sys.stderr)
        summary = RunSummary.crashed(message, None)
        if summary.diagnosis is not None:
            code = "prefect_unavailable" if api is not None else "unknown"
            summary.diagnosis = {**summary.diagnosis, "code": code, "hint": hint, "detail": f"traceback in {crash_log}"}
        return _failure(args, summary, EXIT_STAGE_FAILED)


if __name__ == "__main__":
    sys.exit(main())
