"""Scaling over devices: NTK and training throughput on 1 and on 4 devices.

Run with ``.venv/bin/python benchmarks/devices.py`` (a minute or two on a 2-core CPU). Each device
count runs in its own process (JAX fixes the count when it starts). On a CPU the 4 devices are
virtual (``--xla_force_host_platform_device_count=4``) and share the same cores, so this measures
that the sharded code paths run and what they cost, not a speed-up; on a machine with several
accelerators pass ``--real`` to use the devices it has.

Workloads, float32, medians of 5 runs after a warm-up call (compilation excluded):

* NTK: ``empirical_ntk(method="jacobian", batch_size=64, shard=...)`` of a 2-hidden-layer MLP of
  width 256 with two logits on 256 inputs of dimension 32 (the traced kernel): kernel entries
  per second.
* train: 20 full-batch Adam steps of ``fit(data_parallel=...)`` of the same network on 1024
  examples: examples per second.

Measured on a 2-core CPU (4 virtual devices on the same 2 cores): NTK 49,459 entries/s on one
device, 41,517 on four (0.84x); training 26,729 examples/s on one, 10,045 on four (0.38x). The
virtual devices add the cost of splitting and all-reducing without adding any compute, so on a
CPU one device is the right setting; on real devices run ``--real``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import json, statistics, time
    import jax, jax.numpy as jnp, optax
    from flax import nnx
    import kdbook as kd

    def median_seconds(run, repeats=5):
        jax.block_until_ready(run())
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(run())
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    many = jax.device_count() > 1
    apply, params = kd.functionalize(kd.MLP(32, depth=2, width=256, out_features=2,
                                            rngs=nnx.Rngs(0)))
    x = jax.random.normal(jax.random.key(0), (256, 32))
    ntk = median_seconds(lambda: kd.empirical_ntk(apply, params, x, method="jacobian",
                                                  batch_size=64, shard=many))
    data = jax.random.normal(jax.random.key(1), (1024, 32))
    labels = jnp.arange(1024) % 2
    steps = 20
    train = median_seconds(lambda: kd.fit(apply, params, (data, labels), loss=kd.cross_entropy,
                                          optimizer=optax.adam(1e-3), steps=steps,
                                          progress=False, data_parallel=many).params)
    print(json.dumps({"devices": jax.device_count(), "platform": jax.devices()[0].platform,
                      "ntk_entries_per_s": 256 * 256 / ntk,
                      "train_examples_per_s": steps * 1024 / train}))
""")


def measure(devices: int, real: bool) -> dict:
    env = dict(os.environ)
    if not real:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        env["JAX_PLATFORMS"] = "cpu"
    result = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="use the devices the machine has")
    args = parser.parse_args()
    counts = [None] if args.real else [1, 4]
    rows = [measure(count or 0, args.real) for count in counts]
    print(f"{'devices':>8} {'platform':>9} {'NTK entries/s':>15} {'train examples/s':>17}")
    for row in rows:
        print(
            f"{row['devices']:>8} {row['platform']:>9} {row['ntk_entries_per_s']:>15,.0f} "
            f"{row['train_examples_per_s']:>17,.0f}"
        )
    if len(rows) == 2:
        ntk = rows[1]["ntk_entries_per_s"] / rows[0]["ntk_entries_per_s"]
        train = rows[1]["train_examples_per_s"] / rows[0]["train_examples_per_s"]
        print(f"4 devices / 1 device: NTK {ntk:.2f}x, training {train:.2f}x")


if __name__ == "__main__":
    main()
