"""Benchmark one instrumented training step: every column of README "What a run computes", both gradients, the
optimiser step, at the paper configuration (half-moon N=1000, M=500, MLP 2-16-32-2 tanh), on the same
data, network and noise for

  (a) a naive reference in the common style: one forward for DSM-S, the ISM trace by a Python loop of
      autograd.grad(create_graph=True) over dimensions, separate backward passes;
  (b) dsmexp's torch path (kernel=torch);
  (c) dsmexp's fused C++ CPU kernel (kernel=fused, dsmexp/core/objectives/fused.py), when it builds here;
  (d) dsmexp's torch path with torch.compile (--no-compile skips it).

Every variant draws its noise inside the timed step, as the runner does. dsmexp_ms and speedup_vs_naive
describe the default step (kernel=auto: the fused kernel when it builds, else the torch path). Then the
default step on one thread against all threads, and ms/step against M and against the dimension d
(Gaussian data) for the exact trace, and ms/step of each objective trained alone (diagnostics off: every
objective of the registry, the estimators with one projection) against d for the paper's 16-32 network
and a 16-32-32 one (ms_by_loss_d, ms_by_loss_d_3layer), on the same M*N points (N=1000, M=50,
sigma=0.01). Medians over interleaved repeats after warm-up (torch.utils.benchmark, via
dsmexp.studies.stopwatch), with quartiles and min-max spread; results go to outputs/bench/bench.json.

    make bench                          # or: dsmexp-bench --device cuda --repeats 20
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dsmexp.config import load_dataset
from dsmexp.core.kernels.select import make_kernel
from dsmexp.core.kernels.tangent import TangentKernel
from dsmexp.core.networks import ScoreMLP
from dsmexp.core.objectives import fused, fused_build
from dsmexp.core.objectives.estimators import draw_projections
from dsmexp.core.objectives.registry import OBJECTIVES, objective
from dsmexp.core.objectives.step import step_terms
from dsmexp.core.objectives.terms import METRICS
from dsmexp.studies.stopwatch import summary_ms, time_interleaved
from dsmexp.train.trainer import CPU_CHUNK, CUDA_CHUNK, prepare_cpu

SIGMA, N, HIDDEN, HIDDEN_3 = 0.01, 1000, [16, 32], [16, 32, 32]
M_PAPER = 500
LOSSES = tuple(n for n, o in OBJECTIVES.items() if not o.multiscale_only)  # each trained alone at one sigma
SCALES = {"full": {"m": M_PAPER, "by_m": (1, 10, 100, 500), "by_d": (2, 8, 32, 128), "d_m": 50,
                   "by_loss_d": (2, 8, 32, 128, 512), "ms_m": 50, "ms_levels": 10, "sample_n": 10_000,
                   "sample_steps": 1000},
          "smoke": {"m": 10, "by_m": (1, 10), "by_d": (2, 8), "d_m": 5, "by_loss_d": (2, 8), "ms_m": 2,
                    "ms_levels": 3, "sample_n": 100, "sample_steps": 20}}


def naive_step(model: ScoreMLP, optimizer: torch.optim.Optimizer, x: torch.Tensor, eps: torch.Tensor,
               sigma: float) -> dict[str, float]:
    """One instrumented DSM-S step as it is commonly written (the reference the speed-up is against)."""
    params = list(model.parameters())
    d = x.shape[1]
    z = (x + sigma * eps).reshape(-1, d)
    e = eps.reshape(-1, d)
    s = model(z)  # DSM-S: one forward
    norm = 0.5 * (s**2).sum(-1)
    fit_dsm = (s * e).sum(-1) / sigma
    loss_dsm_s = (norm + fit_dsm).mean()
    loss_dsm = (0.5 * ((s + e / sigma) ** 2).sum(-1)).mean()
    const_dsm = (0.5 * (e**2).sum(-1) / sigma**2).mean()
    zg = z.clone().requires_grad_(True)  # ISM: its own forward, trace by a loop over dimensions
    s2 = model(zg)
    div = torch.zeros(len(z), device=z.device, dtype=z.dtype)
    for i in range(d):
        div = div + torch.autograd.grad(s2[:, i].sum(), zg, create_graph=True)[0][:, i]
    loss_ism = (0.5 * (s2**2).sum(-1) + div).mean()
    g_ism = torch.autograd.grad(loss_ism, params)  # separate backward passes
    g_dsm = torch.autograd.grad(loss_dsm_s, params)
    flat_ism = torch.cat([g.flatten() for g in g_ism])
    flat_dsm = torch.cat([g.flatten() for g in g_dsm])
    root = math.sqrt(len(z))
    row = {"loss": loss_dsm_s, "norm": norm.mean(), "fit_ism": div.mean(), "fit_dsm": fit_dsm.mean(),
           "const_dsm": const_dsm, "loss_ism": loss_ism, "loss_dsm_s": loss_dsm_s, "loss_dsm": loss_dsm,
           "fit_ism_se": div.std() / root, "fit_dsm_se": fit_dsm.std() / root,
           "grad_norm_ism": flat_ism.norm(), "grad_norm_dsm": flat_dsm.norm(),
           "grad_cos": flat_ism @ flat_dsm / (flat_ism.norm() * flat_dsm.norm())}
    optimizer.zero_grad()
    for p, g in zip(params, g_dsm):
        p.grad = g
    optimizer.step()
    return {k: float(v.detach()) for k, v in row.items()}


def dsmexp_step(kernel, model: ScoreMLP, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                eps: torch.Tensor, sigma: float, chunk: int) -> torch.Tensor:
    """One step as dsmexp's runner takes it: all terms, both gradients, the optimiser step."""
    if isinstance(kernel, fused.FusedKernel):
        terms = kernel.step_terms(x, eps, sigma, "dsm_s", True, chunk)
    else:
        terms = step_terms(kernel, x, eps, sigma, "dsm_s", True, chunk)
    for p, g in zip(model.parameters(), terms.grad):
        p.grad = g
    optimizer.step()
    return terms.metrics


def bound_step(kernel, model: ScoreMLP, optimizer: torch.optim.Optimizer, setup: Setup,
               chunk: int) -> Callable[[], torch.Tensor]:
    """dsmexp_step with its arguments fixed and fresh noise drawn in the step, ready to time."""
    return lambda: dsmexp_step(kernel, model, optimizer, setup.x, setup.draw(), SIGMA, chunk)


def default_kernel(model: ScoreMLP):
    """What kernel=auto runs on this machine for the paper's network: the fused kernel if it builds."""
    try:
        return fused.FusedKernel(model)
    except fused_build.BuildError:
        return make_kernel(model)


class Setup:
    """The same data, network (initial state), noise and projections for every variant."""

    def __init__(self, device: torch.device, dim: int = 2, m: int = M_PAPER, seed: int = 0,
                 hidden: list[int] = HIDDEN) -> None:
        self.device = device
        ds = load_dataset("half_moon") if dim == 2 else load_dataset("gaussian", dim=dim)
        self.x = torch.as_tensor(ds.sample(N, seed), dtype=torch.float32, device=device)
        torch.manual_seed(seed)
        self.hidden = list(hidden)
        self.state = ScoreMLP(dim, self.hidden, "tanh").state_dict()
        gen = torch.Generator(device=device).manual_seed(seed + 1)
        noise = torch.randn((dim, m, N), generator=gen, device=device)
        self.eps = noise.permute(1, 2, 0)  # (M, N, d) view of feature-major noise, as the runner draws it
        self.v = draw_projections("rademacher", 1, dim, m * N, gen, device, torch.float32)
        self.dim, self.m = dim, m
        self.generator = torch.Generator(device=device).manual_seed(seed + 2)

    def draw(self) -> torch.Tensor:
        """Fresh noise for one step, drawn as the runner draws it."""
        noise = torch.randn((self.dim, self.m, N), generator=self.generator, device=self.device)
        return noise.permute(1, 2, 0)

    def model_and_optimizer(self) -> tuple[ScoreMLP, torch.optim.Optimizer]:
        model = ScoreMLP(self.dim, self.hidden, "tanh").to(self.device)
        model.load_state_dict(self.state)
        return model, torch.optim.AdamW(model.parameters(), lr=1e-3)

    def trained_alone(self, loss: str, chunk: int) -> Callable[[], torch.Tensor]:
        """One step of `loss` with every other column off (diagnostics_every=0), ready to time."""
        model, optimizer = self.model_and_optimizer()
        kernel = make_kernel(model)
        v = self.v if objective(loss).estimator else None
        # tsm and tsm_mix read a clean score at the data: N(0, I)'s, -x (its values do not change the cost)
        clean = -self.x if objective(loss).clean_score else None

        def step() -> torch.Tensor:
            terms = step_terms(kernel, self.x, self.eps, SIGMA, loss, False, chunk, v=v, trained_only=True,
                               clean_score=clean, kappa=0.5)
            for p, g in zip(model.parameters(), terms.grad):
                p.grad = g
            optimizer.step()
            return terms.metrics
        return step


def peak_memory_mb(device: torch.device, run: Callable[[], object]) -> float:
    """Peak memory a few calls of `run` need: CUDA allocator peak, or growth of the process's peak RSS."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(2):
            run()
        return torch.cuda.max_memory_allocated(device) / 2**20
    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    for _ in range(2):
        run()
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before, 0.0)


def agreement(setup: Setup, chunk: int) -> float:
    """Largest relative difference between naive and dsmexp metrics on the same step."""
    model_a, opt_a = setup.model_and_optimizer()
    model_b, opt_b = setup.model_and_optimizer()
    naive = naive_step(model_a, opt_a, setup.x, setup.eps.contiguous(), SIGMA)
    kernel = default_kernel(model_b) if setup.device.type == "cpu" else make_kernel(model_b)
    ours = dsmexp_step(kernel, model_b, opt_b, setup.x, setup.eps, SIGMA, chunk)
    ours = dict(zip(METRICS, ours.tolist()))
    return max(abs(naive[k] - ours[k]) / max(abs(ours[k]), 1e-12) for k in naive)


def main_comparison(device: torch.device, chunk: int, repeats: int, compile_too: bool, m: int) -> dict:
    setup = Setup(device, m=m)
    model_n, opt_n = setup.model_and_optimizer()
    model_d, opt_d = setup.model_and_optimizer()
    kernel = make_kernel(model_d)
    torch_path = bound_step(kernel, model_d, opt_d, setup, chunk)
    variants = {"torch": torch_path,
                "naive": lambda: naive_step(model_n, opt_n, setup.x, setup.draw().contiguous(), SIGMA)}
    if device.type == "cpu":
        model_f, opt_f = setup.model_and_optimizer()
        fused_kernel = default_kernel(model_f)
        if isinstance(fused_kernel, fused.FusedKernel):
            variants["fused"] = bound_step(fused_kernel, model_f, opt_f, setup, chunk)
    default = variants.get("fused", torch_path)
    peak = peak_memory_mb(device, default)
    if compile_too:
        model_c, opt_c = setup.model_and_optimizer()
        compiled = make_kernel(model_c, compile=True)
        variants["compiled"] = bound_step(compiled, model_c, opt_c, setup, chunk)
    times = time_interleaved(variants, repeats, warmup=2)
    times["dsmexp"] = times["fused" if "fused" in times else "torch"]
    naive_peak = peak_memory_mb(device, variants["naive"])
    return {"times": {k: summary_ms(v) for k, v in times.items()}, "peak_mem_mb": peak,
            "naive_peak_mem_mb": naive_peak, "max_rel_diff_vs_naive": agreement(setup, chunk),
            "default_kernel": "fused" if "fused" in variants else "torch",
            "ms_by_threads": threads_table(default, repeats, device)}


def threads_table(step: Callable[[], object], repeats: int, device: torch.device) -> dict[int, float]:
    """The default step's median ms on one thread and on all of them, in the same process."""
    if device.type != "cpu":
        return {}
    threads = torch.get_num_threads()
    table = {}
    for n in sorted({1, threads}):
        torch.set_num_threads(n)
        times = time_interleaved({"step": step}, repeats, warmup=1)["step"]
        table[n] = summary_ms(times)["median"]
    torch.set_num_threads(threads)
    return table


def scaling_tables(device: torch.device, chunk: int, repeats: int, scale: dict) -> dict:
    """ms/step against M (half-moon) and against d (Gaussian data) for the exact trace."""
    by_m = {}
    for m in scale["by_m"]:
        setup = Setup(device, m=m)
        model, opt = setup.model_and_optimizer()
        kernel = default_kernel(model) if device.type == "cpu" else make_kernel(model)
        t = time_interleaved({"dsmexp": bound_step(kernel, model, opt, setup, chunk)}, repeats,
                             warmup=1)
        by_m[m] = summary_ms(t["dsmexp"])["median"]
    by_d = {}
    for dim in scale["by_d"]:
        setup = Setup(device, dim=dim, m=scale["d_m"])
        model_f, opt_f = setup.model_and_optimizer()
        model_t, opt_t = setup.model_and_optimizer()
        fast, tangent = make_kernel(model_f), TangentKernel(model_t)
        t = time_interleaved({"bilinear": bound_step(fast, model_f, opt_f, setup, chunk),
                              "tangent": bound_step(tangent, model_t, opt_t, setup, chunk)},
                             max(3, repeats // 2), warmup=1)
        by_d[dim] = {k: summary_ms(v)["median"] for k, v in t.items()}
    return {"ms_by_M": by_m, "ms_by_d": by_d}


def loss_tables(device: torch.device, chunk: int, repeats: int, scale: dict) -> dict:
    """ms/step of each objective trained alone against d, for the 16-32 and the 16-32-32 networks.

    At each d all ten variants (five objectives x two networks) run interleaved on the same points, so
    their ratios are measured under the same machine load."""
    tables: dict[str, dict] = {"ms_by_loss_d": {loss: {} for loss in LOSSES},
                               "ms_by_loss_d_3layer": {loss: {} for loss in LOSSES}}
    for dim in scale["by_loss_d"]:
        variants = {}
        for key, hidden in (("ms_by_loss_d", HIDDEN), ("ms_by_loss_d_3layer", HIDDEN_3)):
            setup = Setup(device, dim=dim, m=scale["d_m"], hidden=hidden)
            variants |= {(key, loss): setup.trained_alone(loss, chunk) for loss in LOSSES}
        t = time_interleaved(variants, max(3, repeats // 2), warmup=1)
        for (key, loss), seconds in t.items():
            tables[key][loss][dim] = summary_ms(seconds)["median"]
    return tables


def multiscale_table(device: torch.device, repeats: int, scale: dict) -> dict:
    """ms per training step of each multi-scale objective trained alone (diagnostics_every=0), the
    experiment=multiscale network and schedule (L levels, each point at a random one), N = 1000 points x
    M noise draws in 2-D: one Trainer each, their steps interleaved."""
    import itertools
    import tempfile

    from dsmexp.config import compose
    from dsmexp.train.trainer import Trainer

    losses = [name for name, row in OBJECTIVES.items() if row.multiscale]
    overrides = ["experiment=multiscale", f"noise_samples={scale['ms_m']}",
                 f"schedule.levels={scale['ms_levels']}", f"dataset.n_samples={N}", "diagnostics_every=0",
                 "eval_samples=10", f"device={device.type}"]
    tmp = Path(tempfile.gettempdir())
    trainers = {loss: Trainer(compose([*overrides, f"loss={loss}"]), tmp) for loss in losses}
    counters = {loss: itertools.count() for loss in losses}
    calls = {loss: (lambda t=t, c=counters[loss]: t.step(next(c))) for loss, t in trainers.items()}
    times = time_interleaved(calls, max(3, repeats // 2), warmup=1)
    table = {loss: summary_ms(m)["median"] for loss, m in times.items()}
    config = {"N": N, "M": scale["ms_m"], "levels": scale["ms_levels"], "d": 2, "sampling": "random"}
    return {"ms_multiscale": table, "multiscale_config": config,
            "multiscale_ism_over_dsm": table["ism"] / table["dsm"]}


def sampling_table(device: torch.device, scale: dict) -> dict:
    """Sampling throughput: Langevin on the paper network (ScoreMLP 2-16-32-2 tanh) and annealed Langevin
    on the experiment=multiscale network, n points for `steps` steps (noise drawn inside), seconds and
    points x steps per second; a step is one score call on all n points."""
    from dsmexp.core.conditioning import ConditionalMLP, NoiseConditional
    from dsmexp.core.samplers import SAMPLERS, geometric_sigmas

    n, steps = scale["sample_n"], scale["sample_steps"]
    torch.manual_seed(0)
    paper = ScoreMLP(2, HIDDEN, "tanh").to(device)
    conditional = NoiseConditional(ConditionalMLP(2, [64, 64], "tanh")).to(device)
    runs = {
        "langevin_paper_net": ("langevin", lambda z, sigma: paper(z), {"steps": steps, "step_size": 1e-3,
                                                                       "sigma": SIGMA}),
        "annealed_langevin_multiscale_net": ("annealed_langevin", conditional,
                                             {"sigmas": geometric_sigmas(1.0, 0.01, 10), "eps": 1e-5,
                                              "steps_per_level": steps // 10}),
    }
    out = {}
    for name, (sampler, score, settings) in runs.items():
        gen = torch.Generator(device=device).manual_seed(0)
        x0 = torch.randn((n, 2), generator=gen, device=device)
        with torch.no_grad():
            warm = settings | {"steps": 2, "steps_per_level": 2}
            SAMPLERS[sampler].fn(score, x0[:64], warm, gen, lambda k: None)
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            SAMPLERS[sampler].fn(score, x0, settings, gen, lambda k: None)
            if device.type == "cuda":
                torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        out[name] = {"seconds": seconds, "points_x_steps_per_s": n * steps / seconds}
    return {"sampling": out, "sampling_config": {"n": n, "steps": steps}}


def speed_checks(tables: dict, dim: int) -> dict:
    """The ratios the speed targets are stated in, at dimension dim."""
    two, three = tables["ms_by_loss_d"], tables["ms_by_loss_d_3layer"]
    return {"d": dim, "ism_over_dsm_s": two["ism"][dim] / two["dsm_s"][dim],
            "ssm_vr_over_dsm_s": two["ssm_vr"][dim] / two["dsm_s"][dim],
            "dsm_s_3layer_over_dsm_s": three["dsm_s"][dim] / two["dsm_s"][dim],
            "ism_over_dsm_s_3layer": three["ism"][dim] / three["dsm_s"][dim],
            "ssm_vr_over_dsm_s_3layer": three["ssm_vr"][dim] / three["dsm_s"][dim]}


def print_report(result: dict) -> None:
    t = result["times"]
    m = result["config"]["M"]
    print(f"\none instrumented step, noise included, N={N}, M={m}, MLP 2-16-32-2 tanh, {result['device']}")
    print(f"{'variant':10s} {'median ms':>10s} {'min-max ms':>16s}")
    for name in ("naive", "torch", "fused", "compiled"):
        if name in t:
            print(f"{name:10s} {t[name]['median']:10.1f} {t[name]['min']:7.1f} - {t[name]['max']:<7.1f}")
    print(f"default step: {result['default_kernel']} kernel; "
          f"speed-up vs naive {result['speedup_vs_naive']:.1f}x; {result['points_per_s']:.3g} points/s; "
          f"peak memory {result['peak_mem_mb']:.0f} MB (naive {result['naive_peak_mem_mb']:.0f} MB); "
          f"metrics agree with naive to {result['max_rel_diff_vs_naive']:.1e}")
    if result["ms_by_threads"]:
        print("default step against threads: " + "  ".join(
            f"{n} thread{'s' if n > 1 else ''}: {v:.1f} ms" for n, v in result["ms_by_threads"].items()))
    by_m = "  ".join(f"M={m}: {v:.1f}" for m, v in result["ms_by_M"].items())
    print(f"\nms/step against M (N={N}, d=2):  {by_m}")
    print(f"ms/step against d (Gaussian, N={N}, M={result['config']['M_by_d']}):")
    print(f"{'d':>5s} {'bilinear (dsmexp)':>18s} {'tangent columns':>16s}")
    for dim, row in result["ms_by_d"].items():
        print(f"{dim:5d} {row['bilinear']:18.1f} {row['tangent']:16.1f}")
    for key, net in (("ms_by_loss_d", "16-32"), ("ms_by_loss_d_3layer", "16-32-32")):
        table = result[key]
        dims = list(table[LOSSES[0]])
        m = result["config"]["M_by_d"]
        print(f"\nms/step, objective trained alone, MLP d-{net}-d tanh (N={N}, M={m}):")
        print(f"{'loss':8s}" + "".join(f"{f'd={d}':>10s}" for d in dims))
        for loss in LOSSES:
            print(f"{loss:8s}" + "".join(f"{table[loss][d]:10.1f}" for d in dims))
    ms = result["multiscale_config"]
    print(f"\nms/step across a noise schedule (experiment=multiscale, N={ms['N']}, M={ms['M']}, "
          f"L={ms['levels']}, d=2, trained alone):  "
          + "  ".join(f"{loss}: {v:.1f}" for loss, v in result["ms_multiscale"].items()))
    sampled = result["sampling_config"]
    print(f"\nsampling {sampled['n']} points for {sampled['steps']} steps:  " + "  ".join(
        f"{name}: {v['seconds']:.2f} s ({v['points_x_steps_per_s']:.3g} points x steps/s)"
        for name, v in result["sampling"].items()))
    checks = result["speed_checks"]
    print(f"\nat d={checks['d']}: " + ", ".join(f"{k} {v:.2f}" for k, v in checks.items() if k != "d")
          + f"; multi-scale ism_over_dsm {result['multiscale_ism_over_dsm']:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/bench.json"))
    args = parser.parse_args(argv)
    prepare_cpu()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    chunk = CUDA_CHUNK if device.type == "cuda" else CPU_CHUNK
    scale = SCALES["smoke" if args.smoke else "full"]
    started = time.perf_counter()
    main = main_comparison(device, chunk, args.repeats, not args.no_compile, scale["m"])
    t = main["times"]
    threads = torch.get_num_threads()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {threads} threads"
    result = {
        "device": name, "naive_ms": t["naive"]["median"], "dsmexp_ms": t["dsmexp"]["median"],
        "default_kernel": main["default_kernel"], "torch_ms": t["torch"]["median"],
        "fused_ms": t["fused"]["median"] if "fused" in t else None,
        "compiled_ms": t["compiled"]["median"] if "compiled" in t else None,
        "speedup_vs_naive": t["naive"]["median"] / t["dsmexp"]["median"],
        "points_per_s": scale["m"] * N / (t["dsmexp"]["median"] / 1e3),
        "peak_mem_mb": main["peak_mem_mb"], "naive_peak_mem_mb": main["naive_peak_mem_mb"],
        "max_rel_diff_vs_naive": main["max_rel_diff_vs_naive"], "times": t,
        "ms_by_threads": main["ms_by_threads"],
        "config": {"N": N, "M": scale["m"], "M_by_d": scale["d_m"], "hidden": HIDDEN,
                   "activation": "tanh", "sigma": SIGMA, "chunk": chunk, "repeats": args.repeats},
        "torch": torch.__version__, "python": platform.python_version(),
    }
    result |= scaling_tables(device, chunk, args.repeats, scale)
    result |= loss_tables(device, chunk, args.repeats, scale)
    result |= multiscale_table(device, args.repeats, scale)
    result |= sampling_table(device, scale)
    result["speed_checks"] = speed_checks(result, scale["by_loss_d"][-1])
    result["bench_seconds"] = time.perf_counter() - started
    print_report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{args.out} ({result['bench_seconds']:.0f} s)")


if __name__ == "__main__":
    main()
