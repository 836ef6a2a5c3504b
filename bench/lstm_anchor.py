"""The anchor of bench/lstm.sh: the same data and an LSTM of the same shape in Keras (TensorFlow CPU).

gen DIR N T D HORIZON SEED             writes DIR/x.f32 (N x T x D) and DIR/y.f32 (N x HORIZON),
                                       little-endian: D noisy sinusoids with levels and some
                                       trends per sequence; the target is channel 0's next steps
keras DIR N T D O H BS EPOCHS THREADS  trains LSTM(H) -> Dense(O) on the first N sequences with the
                                       pinball loss over quantiles 0.1, 0.5, 0.9 (column k is
                                       quantile k % 3 of step k // 3, as on the Rust side), Adam
                                       1e-3 (epsilon 1e-7, Keras' default), batch BS, THREADS
                                       intra-op threads; prints each epoch's time, then one
                                       window's inference time
"""
import os
import sys
import time

import numpy as np


def gen(out, n, t, d, horizon, seed):
    rng = np.random.default_rng(seed)
    total = t + horizon
    steps = np.arange(total, dtype=np.float64)
    x = np.empty((n, total, d), dtype=np.float64)
    for c in range(d):
        period = rng.uniform(10, 60, size=(n, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
        level = rng.normal(0, 1, size=(n, 1))
        slope = rng.normal(0, 0.01, size=(n, 1)) * (rng.uniform(size=(n, 1)) < 0.3)
        x[:, :, c] = level + slope * steps + np.sin(2 * np.pi * steps / period + phase) \
            + rng.normal(0, 0.2, size=(n, total))
    np.ascontiguousarray(x[:, :t, :], dtype="<f4").tofile(os.path.join(out, "x.f32"))
    np.ascontiguousarray(x[:, t:, 0], dtype="<f4").tofile(os.path.join(out, "y.f32"))


def keras_run(out, n, t, d, o, h, bs, epochs, threads):
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import keras

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(1)
    x = np.fromfile(os.path.join(out, "x.f32"), dtype="<f4").reshape(-1, t, d)[:n]
    nq = 3
    y = np.fromfile(os.path.join(out, "y.f32"), dtype="<f4").reshape(-1, o // nq)[:n]
    # column k predicts quantile q[k % nq] of horizon step k // nq, as in the Rust side
    q = np.array([[0.1, 0.5, 0.9][k % nq] for k in range(o)], dtype=np.float32)
    yo = np.repeat(y, nq, axis=1)
    qt = tf.constant(q[None, :])

    def pinball(yt, yp):
        e = yt - yp
        return tf.reduce_mean(tf.maximum(qt * e, (qt - 1.0) * e))

    model = keras.Sequential([keras.Input((t, d)), keras.layers.LSTM(h), keras.layers.Dense(o)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=pinball)

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()
            self.cpu = time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            wall = time.perf_counter() - self.start
            cpu = time.process_time() - self.cpu
            print(f"keras epoch {epoch + 1} {wall:.3f} s cpu {cpu:.2f} s loss {logs['loss']:.4f}", flush=True)

    model.fit(x, yo, batch_size=bs, epochs=epochs, shuffle=False, verbose=0, callbacks=[Timer()])
    one = x[:1]
    f = tf.function(lambda z: model(z, training=False))
    for _ in range(20):
        f(one)
    reps = 200
    s = time.perf_counter()
    for _ in range(reps):
        f(one).numpy()
    print(f"keras infer {(time.perf_counter() - s) / reps * 1e6:.1f} us (tf.function, {threads} threads)")


if __name__ == "__main__":
    cmd = sys.argv[1]
    a = sys.argv[2:]
    if cmd == "gen":
        gen(a[0], *map(int, a[1:6]))
    elif cmd == "keras":
        keras_run(a[0], *map(int, a[1:9]))
