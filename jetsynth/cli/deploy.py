"""Command-line commands that reach beyond this machine's CPU: `devices`, `deploy`, `build`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from jetsynth.cli.common import fail
from jetsynth.cli.outputs import OUTPUT
from jetsynth.cli.types import BATCH, COUNT, MIB, PORT, SECONDS, THREADS, WARMUP, Number
from jetsynth.devices.deploy_result import DeployFailure, DeployResult
from jetsynth.devices.profiles import PROFILES
from jetsynth.errors import JetsynthError

_SSH_OPTIONS = [
    click.option("--accept-new-host-key", is_flag=True,
                 help="Record the key of a device seen for the first time (a changed key is still refused)."),
    click.option("--connect-timeout", type=Number(int, 1, 300), default=10, show_default=True,
                 help="Seconds to wait for the SSH connection."),
]


def _ssh_options(function):
    for option in reversed(_SSH_OPTIONS):
        function = option(function)
    return function


@click.group()
def devices() -> None:
    """The Jetson devices jetsynth can reach over SSH (stored in your config dir)."""


@devices.command("add")
@click.argument("name")
@click.option("--host", required=True, help="[user@]address[:port] of the device.")
@click.option("--port", type=PORT, default=None, help="SSH port [default: 22, or the one in --host].")
@click.option("--identity", default=None, help="Private key file for this device.")
@click.option("--python", default="python3", show_default=True, help="The device's Python (runs the agent).")
@click.option("--profile", type=click.Choice(list(PROFILES)), default=None, help="Which board it is.")
@click.option("--known-hosts", default=None, help="A known_hosts file instead of ~/.ssh/known_hosts.")
@click.option("--remote-dir", default="/tmp", show_default=True,
              help="Where deployments make their work directories on the device.")
@click.option("--replace", is_flag=True, help="Overwrite a stored device of the same name.")
def devices_add(name: str, host: str, port: int | None, identity: str | None, python: str,
                profile: str | None, known_hosts: str | None, remote_dir: str, replace: bool) -> None:
    """Store a device under NAME."""
    from jetsynth.devices.inventory import Device, add_device, split_destination

    try:
        user, address, host_port = split_destination(host)
        chosen_port = next((p for p in (port, host_port) if p is not None), 22)
        device = Device(name=name, host=address, user=user, port=chosen_port, identity=identity,
                        python=python, profile=profile, known_hosts=known_hosts, remote_dir=remote_dir)
        path = add_device(device, replace=replace)
    except JetsynthError as exc:
        fail(exc)
    click.echo(f"stored {name} ({device.destination}, port {device.port}) in {path}")


@devices.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def devices_list(as_json: bool) -> None:
    """Show the stored devices."""
    from rich.table import Table

    from jetsynth.cli.progress import make_console
    from jetsynth.devices.inventory import inventory_path, load_devices

    try:
        stored = load_devices()
    except JetsynthError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps({name: d.as_dict() for name, d in stored.items()}, indent=2))
        return
    if not stored:
        click.echo(f"no devices in {inventory_path()}; add one with "
                   "`jetsynth devices add NAME --host user@addr`")
        return
    table = Table("name", "destination", "port", "profile", "python", "remote dir")
    for name, d in stored.items():
        table.add_row(name, d.destination, str(d.port), d.profile or "-", d.python, d.remote_dir)
    make_console().print(table)


@devices.command("remove")
@click.argument("name")
def devices_remove(name: str) -> None:
    """Forget a stored device."""
    from jetsynth.devices.inventory import remove_device

    try:
        remove_device(name)
    except JetsynthError as exc:
        fail(exc)
    click.echo(f"removed {name}")


@devices.command("probe")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_ssh_options
def devices_probe(target: str, as_json: bool, accept_new_host_key: bool, connect_timeout: int) -> None:
    """Read TARGET's facts: JetPack/L4T, TensorRT, CUDA, GPU, power mode, free disk."""
    from jetsynth.devices.deploy import probe
    from jetsynth.devices.inventory import resolve_device
    from jetsynth.devices.ssh import SshOptions

    try:
        device = resolve_device(target)
        facts = probe(device, SshOptions(connect_timeout=connect_timeout,
                                         accept_new_host_key=accept_new_host_key))
    except JetsynthError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    gpu = facts.get("gpu") or {}
    mode = facts.get("power_mode") or {}
    rows = [
        ("board", facts.get("model") or facts.get("machine")),
        ("L4T / JetPack", f"{facts.get('l4t') or '-'} / {facts.get('jetpack') or '-'}"),
        ("TensorRT", facts.get("tensorrt") or "absent"),
        ("CUDA", facts.get("cuda") or "absent"),
        ("GPU", f"{gpu.get('name', '-')} (compute {gpu.get('compute_capability', '-')})" if gpu else "-"),
        ("power mode", f"{mode.get('name')} ({mode.get('id')})" if mode else "-"),
        ("GPU clocks (MHz)", ", ".join(f"{k} {v:.0f}" for k, v in (facts.get("gpu_clocks_mhz") or {}).items())
         or "-"),
        ("trtexec", facts.get("trtexec") or "absent"),
        ("onnxruntime", facts.get("onnxruntime") or "absent"),
        ("python / numpy", f"{facts.get('python')} / {facts.get('numpy') or 'absent'}"),
        ("free disk", f"{facts.get('free_disk_mib', 0):,.0f} MiB in {device.remote_dir}"),
    ]
    width = max(len(k) for k, _ in rows)
    click.echo(f"{device.name} ({device.destination}, port {device.port})")
    for key, value in rows:
        click.echo(f"  {key:<{width}}  {value}")
    for warning in facts.get("warnings", []):
        click.echo(f"  warning: {warning}")


def _describe(result: DeployResult) -> list[str]:
    """A deploy result for people: speed, latency, how it was built, where the time went."""
    lat = result.latency_ms
    host = result.host_seconds
    p90 = f", p90 {lat['p90']:.3f}" if lat.get("p90") is not None else ""
    engine = f", engine {result.engine_bytes / 2**20:.2f} MiB" if result.engine_bytes else ""
    lines = [
        f"{result.target.name}: {result.fps:,.1f} images/s at batch {result.batch} "
        f"({result.backend}, {result.precision})",
        f"  latency per query (ms): mean {lat['mean']:.3f}, p50 {lat['p50']:.3f}{p90}, p99 {lat['p99']:.3f}",
        f"  build {result.build_seconds:.2f} s{engine}; copy {host['copy']:.2f} s, agent "
        f"{host['agent']:.2f} s, total {host['total']:.2f} s",
    ]
    power = result.power
    if power:
        rail = power.get("input_rail")
        if rail:
            lines.append(f"  power {power['rails_mw'][rail] / 1000:.2f} W on {rail} "
                         f"({power['mj_per_image']:.2f} mJ per image)")
    if result.produced_by:
        lines.append(f"  measured with {result.produced_by}")
    lines += [f"  warning: {w}" for w in result.warnings]
    return lines


def _in_order(targets: tuple[str, ...], chosen: list, results: list[DeployResult | DeployFailure],
              unknown: list[DeployFailure]) -> list[DeployResult | DeployFailure]:
    """The results of the resolved devices and the failures of the unknown ones, in the order
    the devices were named."""
    done = iter(results)
    missing = iter(unknown)
    names = {u.name for u in unknown}
    return [next(missing) if target in names else next(done) for target in targets]


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--device", "-d", "targets", multiple=True, required=True,
              help="A stored device name or user@host[:port]; repeat for several devices at once.")
@click.option("--backend", type=click.Choice(["auto", "tensorrt", "trtexec", "onnxruntime"]), default="auto",
              show_default=True, help="auto: TensorRT bindings, else trtexec, else onnxruntime.")
@click.option("--batch", type=BATCH, default=1, show_default=True, help="Images per query.")
@click.option("--fp16/--no-fp16", default=None,
              help="Build in fp16 where the GPU has fast fp16 [default: the device profile's choice, fp16].")
@click.option("--duration", type=SECONDS, default=3.0, show_default=True, help="Minimum timed seconds.")
@click.option("--warmup", type=WARMUP, default=0.5, show_default=True, help="Untimed seconds first.")
@click.option("--iterations", type=COUNT, default=50, show_default=True,
              help="Minimum timed queries.")
@click.option("--threads", type=THREADS, default=0, show_default=True,
              help="onnxruntime CPU threads (0: default).")
@click.option("--ort-provider", type=click.Choice(["auto", "cpu", "cuda", "trt"]), default="auto",
              show_default=True, help="onnxruntime path: which execution provider.")
@click.option("--workspace", type=MIB, default=256, show_default=True, help="TensorRT workspace (MiB).")
@click.option("--min-free", type=Number(int, 0, 1 << 20), default=64, show_default=True,
              help="MiB the device must have free beyond the copied files.")
@click.option("--timeout", type=SECONDS, default=900.0, show_default=True,
              help="Seconds any one remote step may take (an engine build on a TX1 takes minutes).")
@_ssh_options
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: one object, or a list for several devices.")
def deploy(model: Path, targets: tuple[str, ...], backend: str, batch: int, fp16: bool | None,
           duration: float, warmup: float, iterations: int, threads: int, ort_provider: str,
           workspace: int, min_free: int, timeout: float, accept_new_host_key: bool,
           connect_timeout: int, as_json: bool) -> None:
    """Copy MODEL to each device, build and time it there, and print what was measured."""
    from jetsynth.devices.deploy import DeployOptions, deploy_many
    from jetsynth.devices.inventory import resolve_device
    from jetsynth.devices.ssh import SshOptions
    from jetsynth.ship.onnxfile import model_facts

    try:
        model_facts(model)
        chosen, unknown = [], []
        for target in targets:
            try:
                chosen.append(resolve_device(target))
            except JetsynthError as exc:  # the other devices still finish
                unknown.append(DeployFailure(target, str(exc)))
        options = DeployOptions(backend=backend, batch=batch, fp16=fp16, duration=duration, warmup=warmup,
                                min_queries=iterations, workspace_mib=workspace, threads=threads,
                                ort_provider=ort_provider, min_free_mib=min_free)
        ssh_options = SshOptions(connect_timeout=connect_timeout, command_timeout=timeout,
                                 accept_new_host_key=accept_new_host_key)
        results = deploy_many(model, chosen, options, ssh_options) if chosen else []
        results = _in_order(targets, chosen, results, unknown)
    except JetsynthError as exc:
        fail(exc)
    failed = [r for r in results if isinstance(r, DeployFailure)]
    if as_json:
        written = [r.to_json() for r in results]
        click.echo(json.dumps(written[0] if len(written) == 1 else written, indent=2))
    else:
        for result in results:
            if not isinstance(result, DeployFailure):
                click.echo("\n".join(_describe(result)))
    if failed:
        for result in failed:
            click.echo(f"error: {result.error}", err=True)
        raise SystemExit(2)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=OUTPUT, required=True,
              help="Engine file to write (its facts go to OUTPUT.json).")
@click.option("--precision", type=click.Choice(["fp32", "fp16"]), default="fp32", show_default=True,
              help="fp16: build in half precision (used only where the GPU has fast fp16).")
@click.option("--fp16", is_flag=True, hidden=True, help="The old spelling of --precision fp16.")
@click.option("--sparse", is_flag=True, help="Sparse weights (compute 8.0+ only; says so when ignored).")
@click.option("--batch", type=BATCH, default=1, show_default=True,
              help="Batch size the engine is optimised for.")
@click.option("--max-batch", type=BATCH, default=None,
              help="Largest batch [default: --batch].")
@click.option("--workspace", type=MIB, default=256, show_default=True, help="Workspace (MiB).")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Read and update this TensorRT timing cache (faster rebuilds).")
@click.option("--json", "as_json", is_flag=True, help="Print the engine's facts as JSON.")
def build(model: Path, output: Path, precision: str, fp16: bool, sparse: bool, batch: int,
          max_batch: int | None, workspace: int, timing_cache: Path | None, as_json: bool) -> None:
    """Build a TensorRT engine from MODEL on this machine (needs TensorRT and a GPU)."""
    from jetsynth.ship.trt import build as build_engine
    from jetsynth.ship.trt import sidecar_path

    fp16 = fp16 or precision == "fp16"

    try:
        facts = build_engine(model, output, fp16, sparse, batch, max_batch, workspace, timing_cache)
    except JetsynthError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    click.echo(f"{output}: {facts['engine_bytes'] / 2**20:.2f} MiB, {facts['precision']}, TensorRT "
               f"{facts['tensorrt']}, built in {facts['build_seconds']:.1f} s "
               f"(facts in {sidecar_path(output)})")
    if facts.get("sparse_note"):
        click.echo(f"note: {facts['sparse_note']}")
    if facts["fp16_requested"] and facts["precision"] != "fp16":
        click.echo("note: this GPU has no fast fp16; the engine was built in fp32")
