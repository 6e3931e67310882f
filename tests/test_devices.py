"""Several devices: data-parallel training and the sharded NTK give one device's numbers.

The device count is fixed when JAX starts, so the checks run in one subprocess on 4 virtual CPU
devices (``--xla_force_host_platform_device_count=4``); the rest of the suite keeps one device.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CODE = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np, optax
    from flax import nnx
    import kdbook as kd

    assert jax.device_count() == 4, jax.devices()

    def close(a, b, rtol=2e-5, atol=2e-6):
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)

    # the NTK in blocks spread over the devices
    apply, params = kd.functionalize(kd.MLP(6, depth=1, width=64, out_features=2,
                                            rngs=nnx.Rngs(0)))
    x = jax.random.normal(jax.random.key(0), (21, 6))
    whole = kd.empirical_ntk(apply, params, x, method="jacobian")
    sharded = kd.empirical_ntk(apply, params, x, method="jacobian", batch_size=4, shard=True)
    close(sharded, whole, rtol=1e-5, atol=1e-6)

    # data-parallel training: fit (full batch, minibatches), online distillation, codistillation
    apply, params = kd.functionalize(kd.MLP(5, depth=1, width=32, out_features=3,
                                            rngs=nnx.Rngs(0)))
    x = jax.random.normal(jax.random.key(1), (24, 5))
    y = jnp.arange(24) % 3
    teacher = 3.0 * jax.random.normal(jax.random.key(2), (3, 24, 3))
    options = dict(optimizer=optax.adam(0.01), steps=6, progress=False)
    kd_options = dict(soft_ratio=0.7, temperature=2.0)
    runs = {
        "fit": lambda dp: kd.fit(apply, params, (x, y), loss=kd.cross_entropy,
                                 data_parallel=dp, **options),
        "minibatches": lambda dp: kd.fit(apply, params, (x, y), loss=kd.cross_entropy,
                                         batch_size=8, key=jax.random.key(3),
                                         data_parallel=dp, **options),
        "online": lambda dp: kd.online_distill(apply, params, x, teacher, y, **kd_options,
                                               data_parallel=dp, **options),
        "codistill": lambda dp: kd.codistill(apply, params, apply, params, x, y, **kd_options,
                                             data_parallel=dp, **options),
    }
    for name, run in runs.items():
        one, many = run(False), run(True)
        close(one.params, many.params)
        np.testing.assert_allclose(one.history["loss"], many.history["loss"], rtol=2e-5)
        # the trained parameters live on all four devices (replicated), the data was split
        assert {leaf.sharding.num_devices for leaf in jax.tree.leaves(many.params)} == {4}, name
    try:
        kd.fit(apply, params, (x[:22], y[:22]), loss=kd.cross_entropy, data_parallel=True,
               **options)
    except ValueError as error:
        assert "multiple of 4" in str(error), error
    else:
        raise AssertionError("22 examples cannot be split over 4 devices")
    print("ok")
""")


def test_four_devices_give_the_numbers_of_one():
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_force_host_platform_device_count=4",
        JAX_PLATFORMS="cpu",
        JAX_DISABLE_MOST_OPTIMIZATIONS="true",  # as tests/conftest.py: compiling dominates
        JAX_NUMPY_RANK_PROMOTION="raise",
    )
    result = subprocess.run(
        [sys.executable, "-c", CODE], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
