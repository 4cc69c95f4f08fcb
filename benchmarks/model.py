"""Cost of the restorer: parameters, one-step latency and peak memory, against a
100-step mean-reverting SDE sampler (IR-SDE style) over the same backbone.

For each config (``tiny``, ``paper``) and size (256, 512, 1024), in a fresh process each:

* parameters (whole model, backbone, parser);
* one-step inference: one call of the full factorised model (parser, backbone, experts);
* one backbone forward alone (the target: one-step <= 1.2x this);
* the experts' share of the parameters (the target in ``paper``: at least 4 %);
* the 100-step sampler: 100 backbone forwards, each followed by the IR-SDE Euler-Maruyama
  update. Where 100 steps would take too long (``--max-seconds``), it runs fewer steps and
  scales the time by 100 / steps, and the table says so;
* peak memory: the process's peak RSS on a CPU, or ``torch.cuda.max_memory_allocated``.

On CUDA it runs in bf16 autocast with channels_last. Run:
``python benchmarks/model.py [--device cpu|cuda] [--configs tiny paper] [--sizes 256 512 1024]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

STEPS = 100


def _measure(config: str, size: int, device: str, max_seconds: float) -> dict[str, float]:
    import torch
    from skyclear.restore.nn import build_model

    torch.manual_seed(0)
    if device == "cpu":
        torch.set_num_threads(torch.get_num_threads())
    model = build_model(config).to(device).eval()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()
    x = torch.rand(1, 3, size, size, device=device)
    if device == "cuda":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    t0 = torch.zeros(1, device=device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def timed(fn: object, repeat: int) -> float:
        fn()  # type: ignore[operator]
        sync()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()  # type: ignore[operator]
            sync()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    repeat = 5 if size <= 512 else 2
    with torch.no_grad(), autocast:
        one_step = timed(lambda: model(x, t0, x), repeat)

        def backbone() -> torch.Tensor:
            features, _ = model.backbone(torch.cat([x, x], 1), model.time(t0))
            return model.shared(features)

        backbone_time = timed(backbone, repeat)
        steps = max(1, min(STEPS, int(max_seconds / max(backbone_time, 1e-6))))

        def sde_sampler() -> torch.Tensor:
            # IR-SDE's reverse Euler-Maruyama: the network's residual gives the score.
            state, dt, theta, sigma = x.clone(), 1.0 / STEPS, 1.0, 0.5
            for _ in range(steps):
                features, _ = model.backbone(torch.cat([state, x], 1), model.time(t0))
                residual = model.shared(features)
                drift = theta * residual
                state = state - drift * dt + sigma * (dt**0.5) * torch.randn_like(state)
            return state

        sampler_time = timed(sde_sampler, 1) * STEPS / steps
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    return {
        "params_m": count(model) / 1e6,
        "backbone_m": count(model.backbone) / 1e6,
        "parser_m": count(model.parser) / 1e6,
        "experts_m": count(model.experts) / 1e6,
        "one_step_s": one_step,
        "backbone_s": backbone_time,
        "sampler_s": sampler_time,
        "sampler_steps_run": steps,
        "peak_mib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--configs", nargs="+", default=["tiny", "paper"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--max-seconds", type=float, default=60.0,
                        help="time budget of one sampler run before it extrapolates")  # fmt: skip
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--one", nargs=2, metavar=("CONFIG", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = _measure(args.one[0], int(args.one[1]), args.device, args.max_seconds)
        print(json.dumps(result))
        return
    rows = [
        f"device: {args.device}; one-step = the full factorised model once; backbone = its "
        f"U-Net alone; sampler = {STEPS} backbone steps (IR-SDE style)",
        "",
        "| config | size | params (M) | parser (M) | experts (M, share) | one-step (s) | "
        "backbone (s) | one-step / backbone (target <= 1.2) | 100-step sampler (s) | "
        "sampler / one-step | peak memory (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for config in args.configs:
        for size in args.sizes:
            command = [sys.executable, __file__, "--device", args.device, "--max-seconds",
                       str(args.max_seconds), "--one", config, str(size)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                rows.append(
                    f"| {config} | {size} | failed: {done.stderr.strip().splitlines()[-1]} |"
                )
                print(rows[-1], flush=True)
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            note = (
                ""
                if r["sampler_steps_run"] >= STEPS
                else f" ({r['sampler_steps_run']} run, scaled)"
            )
            rows.append(
                f"| {config} | {size} | {r['params_m']:.2f} | {r['parser_m']:.3f} | "
                f"{r['experts_m']:.3f} ({100 * r['experts_m'] / r['params_m']:.1f} %) | "
                f"{r['one_step_s']:.3f} | {r['backbone_s']:.3f} | "
                f"{r['one_step_s'] / r['backbone_s']:.2f} | {r['sampler_s']:.1f}{note} | "
                f"{r['sampler_s'] / r['one_step_s']:.0f}x | {r['peak_mib']:.0f} |"
            )
            print(rows[-1], flush=True)
    report = "\n".join(rows)
    print("\n" + report)
    if args.markdown:
        args.markdown.write_text(report + "\n")


if __name__ == "__main__":
    main()
