"""Benchmarks of the NTK engine: prints a table of medians (seconds) and GFLOP/s.

Run with ``.venv/bin/python benchmarks/ntk.py`` (about two minutes on a 2-core CPU). Methods are
timed side by side in one process, float32, after a warm-up call (compilation excluded).

Workloads (the targets they are checked against are printed with the results):

* W1: two-layer ReLU MLP, input dimension 64, width 8192, n = 512, scalar output, n x n kernel.
* W2: 3 hidden layers of width 1024, 10 logits, n = 256, kernel traced over logits; accuracy
  against a float64 brute-force Jacobian.
* W3: ``infinite_kernels`` at n = 2048 with 1, 2, 3 hidden layers.
* W4: closed-form linearized dynamics, 1024 train / 1024 test points, 10 outputs.
* J: the ``"jacobian"`` method against a plain ``jax.jacrev`` contraction on the same model.

The neural-tangents figures quoted for comparison were measured on this machine type with
neural-tangents 0.6.5 (which needs an older JAX and is not installed here); they are constants.
"""

from __future__ import annotations

import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import kdbook as kd
from kdbook.kernels import kernel_solve, linearized_dynamics
from kdbook.ntk import empirical_ntk, infinite_kernels

NEURAL_TANGENTS = {
    "W1 best": 0.22,
    "W1 default": 3.5,
    "W2 structured": 0.34,
    "W3 L=1": 0.058,
    "W3 L=2": 0.144,
    "W3 L=3": 0.240,
}
ROWS: list[tuple[str, float, float | None, str]] = []


def median_time(fn, repeats: int = 7) -> float:
    jax.block_until_ready(fn())  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_ratio(fn, reference, repeats: int = 21) -> float:
    """Median of time(fn) / time(reference), the two timed alternately, so that a change in the
    machine's speed during the benchmark affects both alike."""
    jax.block_until_ready(fn())
    jax.block_until_ready(reference())
    ratios = []
    for _ in range(repeats):
        seconds = []
        for f in (fn, reference):
            start = time.perf_counter()
            jax.block_until_ready(f())
            seconds.append(time.perf_counter() - start)
        ratios.append(seconds[0] / seconds[1])
    return statistics.median(ratios)


def record(name: str, seconds: float, flops: float | None = None, note: str = "") -> float:
    ROWS.append((name, seconds, None if flops is None else flops / seconds / 1e9, note))
    return seconds


def matmul_rate() -> float:
    a = jax.random.normal(jax.random.key(0), (2048, 2048))
    f = jax.jit(lambda a: a @ a)
    seconds = median_time(lambda: f(a))
    return record("float32 matmul 2048^3 (machine scale)", seconds, 2 * 2048**3)


def w1() -> None:
    n, d, m = 512, 64, 8192
    x = jax.random.normal(jax.random.key(1), (n, d))
    model = kd.MLP(d, depth=1, width=m, out_features=1, rngs=nnx.Rngs(0))
    apply, params = kd.functionalize(model)
    flops = 2 * n * d * m + 2 * (2 * n * n * m)  # forward, then two n x n x m Gram products
    auto = record(
        "W1 empirical_ntk(method='auto')",
        median_time(lambda: empirical_ntk(apply, params, x)),
        flops,
    )

    # A hand-written closed form in plain JAX: the reference the target is stated against.
    w, v = params["layers"][0]["kernel"][...], params["layers"][1]["kernel"][...][:, 0]

    @jax.jit
    def closed_form(x):
        u = x @ w / math.sqrt(d)
        active = (u > 0).astype(u.dtype)
        signal = active * v[None, :]
        hidden = u * active
        return (x @ x.T / d) * (signal @ signal.T) / m + hidden @ hidden.T / m

    reference = record(
        "W1 hand-written closed form (plain JAX)", median_time(lambda: closed_form(x)), flops
    )
    np.testing.assert_allclose(
        empirical_ntk(apply, params, x), closed_form(x), rtol=1e-4, atol=1e-5
    )
    ratio = auto / reference
    ROWS.append(
        (
            "W1 target: auto <= 1.3 x closed form",
            ratio,
            None,
            f"{'met' if ratio <= 1.3 else 'MISSED'} (ratio {ratio:.2f}); "
            f"neural-tangents best {NEURAL_TANGENTS['W1 best']} s, "
            f"default {NEURAL_TANGENTS['W1 default']} s",
        )
    )


def w2() -> None:
    n, d, m, k = 256, 64, 1024, 10
    x = jax.random.normal(jax.random.key(2), (n, d))
    apply, params = kd.functionalize(kd.MLP(d, depth=3, width=m, out_features=k, rngs=nnx.Rngs(0)))
    # backprop of k signals through 2 hidden layers, k-signal Gram products for 3 layers
    flops = (
        2 * (n * d * m + 2 * n * m * m + n * m * k)
        + 2 * 2 * n * k * m * m
        + 3 * 2 * n * n * k * m
        + 3 * 2 * n * n * m
    )
    seconds = record(
        "W2 empirical_ntk(method='structured')",
        median_time(lambda: empirical_ntk(apply, params, x, method="structured")),
        flops,
    )
    fast = np.asarray(empirical_ntk(apply, params, x, method="structured"), np.float64)
    with kd.enable_x64():
        params64 = jax.tree.map(lambda a: jnp.asarray(np.asarray(a), jnp.float64), params)
        x64 = jnp.asarray(np.asarray(x), jnp.float64)
        exact = np.asarray(empirical_ntk(apply, params64, x64, method="jacobian", batch_size=32))
    error = np.linalg.norm(fast - exact) / np.linalg.norm(exact)
    ROWS.append(
        (
            "W2 relative error vs float64 brute-force Jacobian",
            error,
            None,
            f"{'met' if error <= 1e-6 else 'MISSED'} (target 1e-6)",
        )
    )
    ROWS.append(
        (
            "W2 target: <= 0.25 s",
            seconds,
            None,
            f"{'met' if seconds <= 0.25 else 'MISSED'}; neural-tangents structured "
            f"{NEURAL_TANGENTS['W2 structured']} s",
        )
    )


def w3() -> None:
    n, d = 2048, 64
    x = jax.random.normal(jax.random.key(3), (n, d))
    for depth in (1, 2, 3):
        seconds = record(
            f"W3 infinite_kernels depth={depth}, n={n}",
            median_time(lambda depth=depth: infinite_kernels(x, depth=depth)),
            2 * n * n * d + depth * 40 * n * n,
        )
        theirs = NEURAL_TANGENTS[f"W3 L={depth}"]
        ROWS.append(
            (
                f"W3 target depth={depth}: >= 2.5x faster than neural-tangents",
                theirs / seconds,
                None,
                f"{'met' if theirs / seconds >= 2.5 else 'MISSED'} "
                f"(speed-up {theirs / seconds:.1f}x over {theirs * 1e3:.0f} ms)",
            )
        )


def w4() -> None:
    n, m, k = 1024, 1024, 10
    x = jax.random.normal(jax.random.key(4), (n + m, 16))
    kernel = infinite_kernels(x, depth=2, b_std=0.1).ntk
    train, cross = kernel[:n, :n] + 1e-3 * jnp.eye(n), kernel[n:, :n]
    y = jax.random.normal(jax.random.key(5), (n, k))
    eta = 0.5 * n / float(jnp.linalg.eigvalsh(train)[-1])

    def run(times):
        return linearized_dynamics(
            train, y, times=times, learning_rate=eta, kernel_test_train=cross
        )

    record(
        "W4 one Cholesky solve (reference)",
        median_time(lambda: kernel_solve(train, y)),
        n**3 / 3 + 2 * n * n * k,
    )
    record("W4 linearized_dynamics(times=[inf])", median_time(lambda: run([np.inf])))
    record(
        "W4 linearized_dynamics, 20 finite times",
        median_time(lambda: run(np.geomspace(1, 1e4, 20)), repeats=5),
    )
    ratio = median_ratio(lambda: run([np.inf]), lambda: kernel_solve(train, y))
    ROWS.append(
        (
            "W4 target: t = inf no slower than Cholesky",
            ratio,
            None,
            f"{'met' if ratio <= 1.2 else 'MISSED'} (median ratio {ratio:.2f}, timed alternately)",
        )
    )


def jacobian_vs_jacrev() -> None:
    n, d, k = 128, 32, 10
    x = jax.random.normal(jax.random.key(6), (n, d))
    apply, params = kd.functionalize(
        kd.MLP(d, depth=2, width=256, out_features=k, rngs=nnx.Rngs(0))
    )

    @jax.jit
    def plain(params, x):
        jac = jax.jacrev(lambda p: apply(p, x))(params)
        leaves = [leaf.reshape(n * k, -1) for leaf in jax.tree.leaves(jac)]
        return sum((a @ a.T) for a in leaves).reshape(n, k, n, k)

    ours = record(
        "J empirical_ntk(method='jacobian', trace=False)",
        median_time(
            lambda: empirical_ntk(apply, params, x, method="jacobian", trace=False), repeats=3
        ),
    )
    theirs = record(
        "J plain jax.jacrev contraction", median_time(lambda: plain(params, x), repeats=3)
    )
    ROWS.append(
        (
            "J target: no slower than plain jax.jacrev",
            ours / theirs,
            None,
            f"{'met' if ours <= 1.1 * theirs else 'MISSED'} (ratio {ours / theirs:.2f})",
        )
    )


def main() -> None:
    print(f"JAX {jax.__version__}, backend {jax.default_backend()}, {jax.device_count()} device(s)")
    matmul_rate()
    for workload in (w1, w2, w3, w4, jacobian_vs_jacrev):
        workload()
    width = max(len(name) for name, *_ in ROWS)
    print(f"{'benchmark':<{width}}  {'value':>10}  {'GFLOP/s':>8}  note")
    for name, value, rate, note in ROWS:
        rate_text = f"{rate:8.1f}" if rate is not None else " " * 8
        print(f"{name:<{width}}  {value:10.4g}  {rate_text}  {note}")


if __name__ == "__main__":
    main()
