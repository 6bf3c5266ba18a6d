"""The benchmark tools run and print their figures (speed targets live in the tools, never in tests)."""

import json
import os
import subprocess
import sys

import pytest

from inception_weights import requires_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_train_runs_and_reports(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "tools/bench_train.py", "--gin_file=synthetic.gin", "--gin_param=Generator.base_channels = 4",
         "--gin_param=Discriminator.base_channels = 4", "--batch=8", "--steps=2", "--warmup=1", "--nomeasure_peak", "--separate_d_calls", "--onednn=off",
         f"--json={output}"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(output.read_text())
    assert figures["separate_d_calls"] is True
    assert figures["onednn"] == "0" and figures["onednn_source"] == "--onednn=off"  # the state TensorFlow ran with
    assert figures["global_batch"] == 8 and figures["resolution"] == 32 and figures["num_classes"] == 10
    assert figures["images_per_second"] > 0 and figures["ms_per_iteration"] > 0
    assert figures["gflop_per_iteration"] > 0.1  # convolutions and matmuls of D and G, forward and backward
    by_op = figures["gflop_by_op"]
    assert by_op["Conv2D"] > 0 and by_op["Conv2DBackpropFilter"] > 0 and by_op["Conv2DBackpropInput"] > 0
    assert by_op.get("BatchMatMulV2", 0) + by_op.get("BatchMatMulV3", 0) > 0  # the attention
    # The model's count (upsample then convolve, ...) against what runs: the fused resampling convolutions
    # of sagan_tf.layers.resampling do fewer products.
    assert figures["fused_resampling"] is True
    assert 0.4 * figures["gflop_per_iteration"] < figures["gflop_executed_per_iteration"] < 0.9 * figures["gflop_per_iteration"]
    assert figures["gflop_per_iteration_all_ops"] > figures["gflop_executed_per_iteration"]
    assert figures["peak_host_rss_gib"] > 0.1 and 0.05 < figures["peak_host_anonymous_gib"] <= figures["peak_host_rss_gib"]
    # Where the peak comes from: the resident memory after TensorFlow's import (its libraries' pages counted as
    # file-backed), after the networks were built, and after the iterations, each below the peak.
    stages = figures["memory_stages"]
    assert list(stages) == ["imported", "built", "trained"]
    assert stages["imported"]["file_gib"] > 0.05 and stages["imported"]["anonymous_gib"] > 0.01
    assert stages["built"]["anonymous_gib"] >= stages["imported"]["anonymous_gib"]
    assert stages["trained"]["anonymous_gib"] <= figures["peak_host_anonymous_gib"]
    assert "images_per_second" in result.stdout
    # The blocked attention runs its query blocks in a loop; the FLOP count is that of the same model written
    # out (a loop's body would be counted once), and the record names the block size the networks used.
    assert figures["attention_block_size"] == [None, None]
    blocked = subprocess.run(
        [sys.executable, "tools/bench_train.py", "--gin_file=synthetic.gin", "--gin_param=Generator.base_channels = 4",
         "--gin_param=Discriminator.base_channels = 4", "--batch=8", "--steps=1", "--warmup=1", "--nomeasure_peak",
         "--separate_d_calls", "--onednn=off", "--attention_block_size=8", "--precision=bfloat16",
         f"--json={tmp_path / 'blocked.json'}"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert blocked.returncode == 0, blocked.stderr[-3000:]
    counted = json.loads((tmp_path / "blocked.json").read_text())
    assert counted["attention_block_size"] == [8, 8]
    # --precision as the train command's: the same products, computed in bfloat16.
    # The default, as the train command's (auto): float32 with oneDNN off, whatever the CPU.
    assert figures["mixed_precision"] is None
    assert counted["mixed_precision"] == "mixed_bfloat16"
    for key in ("gflop_per_iteration", "gflop_executed_per_iteration"):
        assert counted[key] == pytest.approx(figures[key], rel=1e-9), key


def test_bench_conv_grad_times_both_filter_gradients_and_names_the_rules_pick(tmp_path):
    output = tmp_path / "conv.json"
    cmd = [sys.executable, "tools/bench_conv_grad.py", "--repeats=1", "--onednn=off", f"--json={output}",
           f"--markdown={tmp_path / 'conv.md'}"]
    shapes = "--shapes=2,8,8,8,3;2,8,8,4,1;2,8,8,6,4s2"
    result = subprocess.run([*cmd, shapes], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(output.read_text())["rows"]
    assert [row["shape"] for row in rows] == [[2, 8, 8, 8, 3], [2, 8, 8, 4, 1], [2, 8, 8, 6, "4s2"]]
    assert rows[2]["gflop"] == pytest.approx(2 * 2 * 4 * 4 * 16 * 8 * 6 / 1e9)  # stride 2: a quarter of the positions
    for row in rows:
        assert row["filter_gradient_matmul"]["ms"] > 0 and row["filter_gradient_onednn"]["ms"] > 0
        assert row["auto_picks"] == "onednn"  # small shapes: TensorFlow's own kernel on either kernel level
    table = (tmp_path / "conv.md").read_text()
    assert "| 2, 8x8, 8 -> 8, 3x3 |" in table and "| 2, 8x8, 8 -> 6, 4x4/2 |" in table
    bad = subprocess.run([*cmd, "--shapes=2,8,8"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and "five positive integers" in bad.stderr and "Traceback" not in bad.stderr


def test_bench_attention_measures_both_paths_and_stops_trials_at_the_limit(tmp_path):
    output = tmp_path / "attention.json"
    # The equal-batch trials run; every largest-batch trial exceeds the tiny limit and is stopped.
    result = subprocess.run(
        [sys.executable, "tools/bench_attention.py", "--feature_size=8", "--channels=16", "--batch=2", "--max_batch=2",
         "--block_size=16", "--steps=1", "--memory_limit_gib=0.05", f"--json={output}"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(output.read_text())
    for path in ("full", "blocked"):
        equal = figures[f"{path}_equal_batch"]
        assert equal["batch"] == 2 and equal["ms"] > 0 and equal["peak_rss_gib"] > 0.05
        assert figures[f"{path}_largest_batch"] is None
    assert result.stdout.count("over 0.05 GiB") == 2


@requires_weights
def test_eval_reference_scores_a_sample_set_with_the_runs_evaluator(tmp_path):
    import numpy as np

    rng = np.random.RandomState(0)
    np.savez(tmp_path / "ref.npz", images=rng.randint(0, 256, (12, 32, 32)).astype(np.uint8),
             labels=(np.arange(12) % 10).astype(np.int8), step=1500, seed=2)
    output = tmp_path / "ref.json"
    result = subprocess.run([sys.executable, "tools/eval_reference.py", f"--npz={tmp_path / 'ref.npz'}",
                             f"--output={output}", "--gin_file=synthetic.gin", "--num_samples=12",
                             "--nointra_fid"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(output.read_text())
    assert metrics["step"] == 1500 and metrics["seed"] == 2 and metrics["num_generated"] == 12
    assert metrics["fid"] > 0 and metrics["classifier"] == "fid_inception_2015_port" and "cores" in metrics["machine"]
    table = (tmp_path / "results.md").read_text()
    assert f"| ref.npz (images) | 2 | 1500 | {metrics['fid']:.1f} |" in table
    missing = subprocess.run([sys.executable, "tools/eval_reference.py", f"--npz={tmp_path / 'ref.npz'}",
                              f"--output={output}", "--key=images_ema"], capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and "no array 'images_ema'" in missing.stderr


def _tool(name):
    import importlib.util

    if os.path.join(REPO, "tools") not in sys.path:
        sys.path.insert(0, os.path.join(REPO, "tools"))  # the lab, as `python tools/x.py` sees it
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_reference_pairs_alternate_and_the_table_reports_ratios_and_busy_runs(tmp_path):
    import pytest

    bench = _tool("bench_reference")
    assert bench.pair_orders(3) == [("reference", "sagan_tf"), ("sagan_tf", "reference"), ("reference", "sagan_tf")]
    assert bench.result_line("warmup\nRESULT {\"a\": 1}\nRESULT {\"a\": 2}\n") == {"a": 2}
    with pytest.raises(RuntimeError, match="no RESULT"):
        bench.result_line("Traceback ...")
    reference = {"g_params": 4386308, "d_params": 4289282}
    bench.check_parameters(reference, {"g_params": 4386308, "d_params": 4289282 + 400}, "32")
    with pytest.raises(ValueError, match="d_params differ"):
        bench.check_parameters(reference, {"g_params": 4386308, "d_params": 4289282 * 2}, "32")
    common = {"batch": 64, "resolution": 32, "g_params": 4386308, "d_params": 4289282, "peak_rss_gib": 1.0}
    runs = [{**common, "side": "reference", "seconds_per_iteration": 24.0, "start_load": 0.1},
            {**common, "side": "sagan_tf", "seconds_per_iteration": 12.0, "start_load": 0.2},
            {**common, "side": "sagan_tf", "seconds_per_iteration": 16.0, "start_load": 0.9},
            {**common, "side": "reference", "seconds_per_iteration": 24.0, "start_load": 0.1}]
    row = bench.summarise("32", runs)
    assert row["reference"]["median"] == 24.0 and row["sagan_tf"]["median"] == 14.0
    assert row["ratio"] == pytest.approx(1.75) and row["ratio_range"] == [1.5, 2.0]  # per pair: 2.0 and 1.5
    report = {"machine": {"description": "AMD EPYC, 2 cores", "avx512f": False, "avx512_bf16": False,
                          "amx_bf16": False}, "threads": 2, "torch": "2.13.0", "tensorflow": "2.21.0", "onednn": "1",
              "pairs": 2, "warmup": 1, "iters": 3, "idle_load": 0.3, "configs": [row]}
    table = bench.markdown(report)
    assert "AVX-512 no, AVX512_BF16 no, AMX no" in table and "TF_ENABLE_ONEDNN_OPTS=1" in table
    assert ("| CIFAR-10 (cifar10.gin), ch 64: 32x32, batch 64 | 4.39M / 4.29M | 24.00, 24.00; 24.00 | 12.00, 16.00; "
            "14.00 | 1.75x (1.50-2.00) | - |") in table
    assert "1 run(s) started with the load average above 0.3 (up to 0.90)" in table
    # The oneDNN state bench_train ran with, and the ISA limit, are named.
    runs = [{**run, "config": "32", **({"onednn": "1", "gflop_per_iteration": 280.0} if run["side"] == "sagan_tf" else {})}
            for run in runs]
    table = bench.markdown({**report, "max_isa": "avx2", "runs": runs})
    assert "oneDNN on, as the train command" in table and "Kernels limited to AVX2 on both sides" in table
    assert "| 1.75x (1.50-2.00) | 12 / 20 |" in table  # 280 GFLOP over 24 and 14 s
    assert table.count("GiB | - |") == 1  # no executed count or matmul rate recorded: no fraction
    # The executed FLOPs (fused convolutions) against the matmul rate the sagan_tf runs measured (their median).
    runs = [{**run, **({"gflop_executed_per_iteration": 196.0, "matmul_gflop_per_second": m}
                       if run["side"] == "sagan_tf" else {})} for run, m in zip(runs, (0, 20.0, 15.0, 0))]
    table = bench.markdown({**report, "max_isa": "avx2", "runs": runs})
    assert "| 1.00 / 1.00 GiB | 14 / float32 18 (0.80) |" in table and "sagan_tf in float32 on TensorFlow" in table
    # A bfloat16 step: named, and its executed rate also against the bfloat16 matmul rate its runs measured.
    bf16 = [{**run, **({"mixed_precision": "mixed_bfloat16", "matmul_bfloat16_gflop_per_second": 56.0}
                       if run["side"] == "sagan_tf" else {})} for run in runs]
    table = bench.markdown({**report, "runs": bf16})
    assert "| 14 / float32 18 (0.80); bfloat16 56 (0.25) |" in table
    assert "BigGAN-PyTorch in float32 on torch 2.13.0, sagan_tf in mixed_bfloat16 on TensorFlow" in table
    assert "anonymous" not in bench.markdown(report)  # no side sampled it: the old table
    sampled = [{**run, "peak_anonymous_gib": {"reference": 0.5, "sagan_tf": 0.4}[run["side"]] + 0.1 * i}
               for i, run in enumerate(runs)]
    table = bench.markdown({**report, "configs": [bench.summarise("32", sampled)], "runs": sampled})
    assert "| 1.00 / 1.00 GiB; anonymous 0.80 / 0.60 |" in table and "RssAnon" in table  # each side's largest
    assert "Where each peak comes from" not in table  # no run took memory_stages: no second table
    assert "unmap" not in table  # its sagan_tf runs did not say they released their start-up pages
    released = [{**run, "release_start_up_pages": run["side"] == "sagan_tf"} for run in sampled]
    assert "sagan_tf's runs unmap those pages as its train command does" in bench.markdown(
        {**report, "configs": [bench.summarise("32", released)], "runs": released})
    # Where the peaks come from: each side's stages (median over its runs), what each stage added.
    staged = [{**run, "peak_rss_gib": 1.0 + 0.2 * i,
               "memory_stages": {"imported": {"anonymous_gib": 0.2, "file_gib": 0.3 + 0.1 * i},
                                 "built": {"anonymous_gib": 0.25 + 0.1 * i, "file_gib": 0.4},
                                 "trained": {"anonymous_gib": 0.3, "file_gib": 0.5 + 0.2 * i}}}
              for i, run in enumerate(sampled)]
    table = bench.markdown({**report, "configs": [bench.summarise("32", staged)], "runs": staged})
    # reference: runs 0 and 3 (imported file 0.3 / 0.6, built +0.05 / +0.35, peak anonymous 0.5 / 0.8, file after
    # the iterations 0.5 / 1.1, peak resident 1.0 / 1.6): medians
    assert "| CIFAR-10 (cifar10.gin), ch 64 | BigGAN-PyTorch | 0.20 / 0.45 | 0.20 | 0.25 | 0.65 | 0.80 | 1.30 |" in table
    # sagan_tf: runs 1 and 2 (built +0.15 / +0.25, peak anonymous 0.5 / 0.6: +0.15 both above built)
    assert "| CIFAR-10 (cifar10.gin), ch 64 | sagan_tf | 0.20 / 0.45 | 0.20 | 0.15 | 0.55 | 0.80 | 1.30 |" in table
    # --render rewrites the table of a stored report and runs nothing.
    stored = tmp_path / "machine.json"
    stored.write_text(json.dumps({**report, "runs": runs}))
    result = subprocess.run([sys.executable, "tools/bench_reference.py", f"--render={stored}"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "machine.md").read_text() == bench.markdown({**report, "runs": runs})
    assert bench.run_environment("avx2")["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    # sagan_tf's precision is resolved as the train command resolves it, in the timed runs' environment: "auto"
    # is float32 where the kernels stop at AVX2 (no native bfloat16), and --precision=bfloat16 forces it.
    assert bench.resolved_precisions(["fmnist", "128"], "auto", "avx2") == {"fmnist": "float32", "128": "float32"}
    assert bench.resolved_precisions(["fmnist"], "bfloat16", None) == {"fmnist": "mixed_bfloat16"}


def test_shape_score_scores_a_run_and_the_real_data(tiny_shape_score):
    from shared_runs import command_output

    # tools/shape_score.py --model_dir=<tiny run> --per_class=4 --json=... (the shared tiny_shape_score)
    scores = json.loads((tiny_shape_score / "shapes.json").read_text())
    assert len(scores["generated"]["per_class"]) == 10 and scores["generated"]["count"] == 40
    assert scores["real"]["score"] >= 0.9 and scores["generated"]["score"] < 0.5  # 4 steps of training
    stdout = command_output(tiny_shape_score)[0]
    assert "class" in stdout and stdout.count("\n") >= 12


def test_bench_long_range_compares_variants_over_seeds():
    import pytest

    bench = _tool("bench_long_range")
    per_seed = {"attention": {str(s): {"pair_consistency": v, "class_identity": 0.5} for s, v in enumerate([0.8, 0.9, 0.85])},
                "no_attention": {str(s): {"pair_consistency": v, "class_identity": 0.5} for s, v in enumerate([0.5, 0.6, 0.55])}}
    summary, comparisons = bench.summarise(per_seed)
    assert summary["attention"]["pair_consistency"]["mean"] == pytest.approx(0.85)
    assert summary["attention"]["pair_consistency"]["std"] == pytest.approx(0.05)
    pairs = comparisons["pair_consistency"]
    assert pairs["difference"] == pytest.approx(0.3) and pairs["p"] < 0.01 and pairs["t"] > 5
    assert 0.2 <= pairs["interval_95"][0] < 0.3 < pairs["interval_95"][1] <= 0.4
    assert "p" not in comparisons["class_identity"] and comparisons["class_identity"]["interval_95"] == [0.0, 0.0]
    report = {"num_steps": 1500, "num_samples": 500, "seeds": [0, 1, 2], "machine": "cpu", "per_seed": per_seed,
              "summary": summary, "comparisons": comparisons, "real": {"pair_consistency": 0.99, "class_identity": 0.98},
              "real_swapped_halves": 0.02}
    table = bench.markdown(report)
    assert "| attention | 0.850 ± 0.050 | 0.500 ± 0.000 | 0: 0.80 / 0.50; 1: 0.90 / 0.50; 2: 0.85 / 0.50 |" in table
    assert "- pair consistency: +0.300 (Welch's t = " in table and "no t-test" in table


def test_time_to_quality_converts_steps_with_the_paired_benchmark(tmp_path):
    def write(path, value):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))

    bench = {"threads": 2, "machine": {"description": "cpu X, 2 cores"},
             "configs": [{"config": "fmnist", "reference": {"median": 1.5}, "sagan_tf": {"median": 1.0}}]}
    write(tmp_path / "bench.json", bench)
    write(tmp_path / "runs" / "a" / "seed_0" / "final_eval.json", {"fid": 50.0, "step": 1500, "ema": False})
    write(tmp_path / "runs" / "e" / "seed_0" / "final_eval.json", {"fid": 30.0, "step": 5000, "ema": True})
    write(tmp_path / "runs" / "e" / "seed_0" / "final_eval_raw.json", {"fid": 35.0, "step": 5000, "ema": False})
    write(tmp_path / "ref" / "ref_s0_step01500.json", {"fid": 66.0, "step": 1500})
    # The same set scored again on another machine: one sample set, one point.
    write(tmp_path / "ref" / "ref_s0_step01500_intel_xeon.json", {"fid": 66.5, "step": 1500})
    result = subprocess.run([sys.executable, "tools/time_to_quality.py", f"--bench={tmp_path / 'bench.json'}",
                             f"--runs={tmp_path / 'runs'}", f"--reference={tmp_path / 'ref'}",
                             f"--output={tmp_path / 'ttq'}"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "ttq.md").read_text()
    # 1,500 steps x 1.0 s x 2 threads = 50 CPU-minutes ours; x 1.5 s x 2 = 75 the reference's.
    assert "| sagan_tf | a seed_0 | 1,500 | 50 | 50.0 |" in table
    assert "| sagan_tf | e seed_0 EMA | 5,000 | 167 | 30.0 |" in table and "| e seed_0 raw G | 5,000 | 167 | 35.0 |" in table
    assert "| BigGAN-PyTorch | ref_s0_step01500 | 1,500 | 75 | 66.0 |" in table
    assert "66.5" not in table and table.count("| BigGAN-PyTorch |") == 1
    assert (tmp_path / "ttq.png").stat().st_size > 1000


def test_flop_count_leaves_out_the_gradients_that_never_run():
    """The G step's tape builds D's weight gradients too (Conv2D's gradient makes both), which TensorFlow prunes:
    a profile shows filter-gradient kernels for D only in the D step. The count takes only live ops."""
    import keras
    import tensorflow as tf

    from sagan_tf import config, gin_registry  # noqa: F401
    from sagan_tf.models.factory import DataFacts, build_model

    sys.path.insert(0, os.path.join(REPO, "tools"))  # the lab, as `python tools/x.py` sees it
    from lab import flops as bench

    config.parse(["synthetic.gin"], ["Generator.base_channels = 4", "Discriminator.base_channels = 4"])
    # The networks' default filter gradient is TensorFlow's: every one a Conv2DBackpropFilter op.
    model = build_model(DataFacts(10, 32, 3))
    model.compile(keras.optimizers.Adam(), keras.optimizers.Adam())
    graph = tf.function(model.train_step, autograph=False).get_concrete_function(
        (tf.zeros((4, 32, 32, 3)), tf.zeros((4,), tf.int32))).graph
    live = bench.live_ops(graph)
    ops = graph.get_operations()
    # The forward convolutions (G's upsampling ones are transposed convolutions) of G and D, each in the D step
    # and in the G step; the ops under "gradient_tape/" are the gradients.
    forward = sum(op.type in ("Conv2D", "Conv2DBackpropInput") and not op.name.startswith("gradient_tape/")
                  for op in ops)
    built = sum(op.type == "Conv2DBackpropFilter" for op in ops)
    running = sum(op.type == "Conv2DBackpropFilter" for op in ops if op in live)
    assert running == forward // 2 < built  # one weight gradient per conv of D (D step) and of G (G step)
    counted = bench.count_flops(graph)
    assert counted["Conv2DBackpropFilter"] < counted["Conv2DBackpropInput"] + counted["Conv2D"]


@requires_weights
def test_bench_eval_throughput_counts_the_port_flops_and_reports_onednn(tmp_path):
    output = tmp_path / "eval.json"
    result = subprocess.run(
        [sys.executable, "tools/bench_eval.py", "--throughput", "--batch_size=2", "--batches=1", "--onednn=off",
         f"--json={output}"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(output.read_text())
    # Inception v3 at 299x299 is about 5.7 G multiply-adds per image: the traced call's convolutions.
    assert 10.0 < figures["gflop_per_image"] < 13.0
    assert figures["onednn"] is False and figures["onednn_source"] == "--onednn=off"
    assert figures["images_per_second"] > 0 and figures["matmul_gflop_per_second"] > 0
    assert figures["fraction_of_matmul"] == figures["gflop_per_second"] / figures["matmul_gflop_per_second"]


def test_shape_curve_tabulates_scores_over_steps(tmp_path):
    curve = _tool("shape_curve")
    run = tmp_path / "c8"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"label": "ch 8", "wall_seconds": 300, "machine": "cpu"}))
    for step, per_class in ((500, [0.2, 0.6]), (1000, [0.9, 1.0])):
        (run / f"shape_{step}.json").write_text(json.dumps(
            {"generated": {"score": sum(per_class) / 2, "per_class": per_class}, "real": {"score": 0.98}}))
    table = curve.markdown([curve.load_run(str(run))])
    assert "| run | step 500 | step 1000 | raw G, last step | real data | wall time | machine |" in table
    assert "| ch 8 | 0.40 (0.20) | 0.95 (0.90) | - | 0.98 | 5.0 min | cpu |" in table
    (run / "raw_final.json").write_text(json.dumps({"generated": {"score": 0.5, "per_class": [0.3, 0.7]}}))
    assert "| ch 8 | 0.40 (0.20) | 0.95 (0.90) | 0.50 (0.30) | 0.98 |" in curve.markdown([curve.load_run(str(run))])


def test_parity_report_reads_both_sides_and_states_the_outcome_from_the_interval(tmp_path):
    import pytest

    parity = _tool("parity_report")

    def evaluation(fid, kid, key="0ef2fea11657", step=1500, seed=None):
        return {"fid": fid, "kid": kid, "step": step, "real_statistics": f"/cache/fashion_mnist-train-32px-10000-{key}.npz",
                **({"seed": seed, "machine": "cpu R"} if seed is not None else {})}

    ours = {f"s{i}": evaluation(f, 0.030) for i, f in enumerate([50.0, 52.0, 54.0, 51.0, 53.0])}
    reference = {f"r{i}": evaluation(f, 0.031, seed=2 - i) for i, f in enumerate([65.0, 66.0, 67.0])}
    result = parity.report(ours, reference, 1500)
    assert ("sagan_tf scored on a machine not recorded; where they trained is not in these records. "
            "BigGAN-PyTorch scored on cpu R (seeds 0, 1, 2); where they trained is not in these records."
            in parity.markdown(result))
    unnumbered = {f"/r/ref_s{k}_step01500.json": {**evaluation(60.0 + k, 0.031), "machine": "cpu R"}
                  for k in (4, 10)}  # no "seed" field: the file name's
    assert "scored on cpu R (seeds 4, 10)" in parity.markdown(parity.report(ours, unnumbered, 1500))
    assert result["same_real_statistics"]
    fid = result["fid"]
    assert fid["sides"]["sagan_tf"]["mean"] == pytest.approx(52.0) and fid["sides"]["sagan_tf"]["n"] == 5
    assert fid["sides"]["BigGAN-PyTorch"]["sd"] == pytest.approx(1.0)
    assert fid["comparison"]["difference"] == pytest.approx(-14.0) and fid["outcome"] == "ahead"
    assert result["kid"]["comparison"]["difference"] == pytest.approx(-1.0)  # in units of KID x 1000
    assert parity.report(reference, ours, 1500)["fid"]["outcome"] == "behind"
    close = {f"r{i}": evaluation(f, 0.030) for i, f in enumerate([49.0, 55.0, 52.5])}
    assert parity.report(ours, close, 1500)["fid"]["outcome"] == "at parity"
    other = {k: evaluation(v["fid"], v["kid"], key="dadbeedb74ec") for k, v in reference.items()}
    void = parity.report(ours, other, 1500)
    assert not void["same_real_statistics"] and "the comparison is void" in parity.markdown(void)
    assert "| FID | 52.00 ± 1.58 (5) | 66.00 ± 1.00 (3) | -14.00 |" in parity.markdown(result)
    named = parity.markdown(parity.report(ours, reference, 1500, ("biases uniform", "biases 0")))
    assert "| metric | biases uniform (mean ± sd, n) | biases 0 (mean ± sd, n) |" in named
    assert "real statistics biases uniform: ['0ef2fea11657'], biases 0: ['0ef2fea11657']" in named


def test_parity_report_compares_two_lists(tmp_path):
    """--against reads a second experiment list's evaluations in place of the reference's sets."""
    def write(folder, run, fids, seeds=None):
        for seed, fid in zip(seeds or range(len(fids)), fids):
            path = tmp_path / folder / run / f"seed_{seed}"
            path.mkdir(parents=True)
            (path / "final_eval.json").write_text(json.dumps(
                {"fid": fid, "kid": fid / 1000, "step": 1500, "real_statistics": "/c/x-0ef2fea11657.npz"}))
            # Where each run trained: its runner.json (a resumed run names both machines); seed 2 has none.
            devices = {0: ["cpu A"], 3: ["cpu A", "cpu B"], 11: ["cpu A"], 12: ["cpu B"]}
            if folder == "uniform" and seed in devices:
                (path / "runner.json").write_text(json.dumps({"status": "trained", "devices": devices[seed]}))

    write("uniform", "fan_in_uniform_biases", [58.0, 94.0, 72.0, 72.0, 70.0], seeds=[0, 2, 3, 11, 12])
    write("zeros", "aligned", [95.0, 109.0, 103.0, 96.0, 101.0])
    out = tmp_path / "p.md"
    result = subprocess.run([sys.executable, "tools/parity_report.py",
                             f"--ours={tmp_path / 'uniform'}", f"--against={tmp_path / 'zeros'}", "--step=1500",
                             "--names=biases uniform,biases 0", f"--output={out}"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    table = out.read_text()
    assert "| FID | 73.20 ± 13.01 (5) | 100.80 ± 5.67 (5) | -27.60 |" in table and "| ahead |" in table
    figures = json.loads(out.with_suffix(".json").read_text())
    assert figures["run"] == "fan_in_uniform_biases" and figures["against_run"] == "aligned"
    assert len(figures["against"]) == 5 and "reference" not in figures
    assert ("Machines, as the records give them: biases uniform trained on cpu A (seeds 0, 3, 11), a machine not "
            "recorded (seed 2), cpu B (seeds 3, 12). biases 0 trained on a machine not recorded (seeds 0, 1, 2, 3, 4)."
            in table)
    write("zeros", "other", [90.0, 91.0])
    several = subprocess.run([sys.executable, "tools/parity_report.py", f"--ours={tmp_path / 'uniform'}",
                              f"--against={tmp_path / 'zeros'}", "--step=1500", f"--output={tmp_path / 'q.md'}"],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert several.returncode == 2 and "holds 2 evaluated runs" in several.stderr and "--against_run" in several.stderr
    assert not (tmp_path / "q.md").exists()


def test_spread_report_states_each_modes_spread_and_where_the_reruns_losses_part(tmp_path):
    """Reruns grouped by name prefix: FID mean, sd and range per mode, and the reruns' logged losses compared
    step by step (identical, or the first step where they differ), timings left out; a resumed run's first
    line (a part of a window) is not compared; reruns of different seeds, or a run two groups name, stop it."""
    def log(losses, rate, resume=None):
        text = "Training R: new run, to step 1500; 1 replica.\n"
        for step, d in losses:
            text += f"step {step}/1500  d_loss {d:.4f}  g_loss 1.0000  {rate:,.1f} images/s  0.6 s/step  ETA 1m\n"
            if resume and step == resume[1]:  # stopped after logging it, resumed from the checkpoint before
                text += f"Training R: resuming at step {resume[0]}, to step 1500; 1 replica.\n"
                text += f"step {step}/1500  d_loss 9.9999  g_loss 1.0000  {rate:,.1f} images/s  0.6 s/step  ETA 1m\n"
        return text

    def write(run, fid, losses, rate, key="0ef2fea11657", seed=0, resume=None):
        path = tmp_path / "same" / run / f"seed_{seed}"
        path.mkdir(parents=True)
        (path / "final_eval.json").write_text(json.dumps(
            {"fid": fid, "kid": fid / 1000, "step": 1500, "ema": False, "num_generated": 10000,
             "real_statistics": f"/c/x-{key}.npz"}))
        (path / "runner.json").write_text(json.dumps({"commits": ["abc"], "devices": ["cpu"]}))
        (path / "train.log").write_text(log(losses, rate, resume))

    def spread(groups, out):
        return subprocess.run([sys.executable, "tools/spread_report.py", f"--runs={tmp_path / 'same'}",
                               f"--groups={groups}", "--step=1500", f"--output={out}"],
                              capture_output=True, text=True, cwd=REPO, timeout=120)

    same = [(100, 2.5), (200, 1.5), (300, 1.2)]
    write("deterministic_a", 58.0, same, 94.2)
    write("deterministic_b", 58.0, same, 1234.5, resume=(250, 300))  # the step-300 line logged twice
    write("deterministic_c", 58.0, same, 107.1)
    write("default_a", 58.0, same, 90.0)
    write("default_b", 62.0, [(100, 2.5), (200, 1.4), (300, 1.2)], 91.0)
    write("default_c", 66.0, [(100, 2.5), (200, 1.3), (300, 1.2)], 92.0)
    out = tmp_path / "spread.md"
    result = spread("deterministic,default", out)
    assert result.returncode == 0, result.stderr
    table = out.read_text()
    assert table.startswith("Seed 0 trained again, evaluated at step 1500, raw generator, 10,000 samples each")
    assert "| deterministic | 3 | 58.00, 58.00, 58.00 | 58.00 ± 0.00 | 0.00 | 58.00 ± 0.00 | identical at all 3 logged steps |" in table
    assert "| default | 3 | 58.00, 62.00, 66.00 | 62.00 ± 4.00 | 8.00 | 62.00 ± 4.00 | differ from step 200 |" in table
    figures = json.loads(out.with_suffix(".json").read_text())
    assert figures["same_real_statistics"] and figures["groups"]["default"]["runs"]["default_b"]["commits"] == ["abc"]
    write("default_d", 60.0, same, 90.0, key="dadbeedb74ec")
    assert spread("default", out).returncode == 0 and "NOT the same: the spread is void" in out.read_text()
    write("default_d", 60.0, same, 90.0, seed=1)
    seeds = spread("default", tmp_path / "s2.md")
    assert seeds.returncode == 2 and "not one seed each" in seeds.stderr and not (tmp_path / "s2.md").exists()
    write("default_ema_a", 60.0, same, 90.0)
    overlap = spread("default,default_ema", tmp_path / "s3.md")
    assert overlap.returncode == 2 and "run default_ema_a is named by default and default_ema" in overlap.stderr


def test_ab_report_tabulates_rounds_and_ratios_to_the_baseline(tmp_path):
    """Each variant's rounds, median and median per-round ratio to the baseline's record of the same round;
    a missing baseline is one line and exit 2, nothing written."""
    times = {"base": [200.0, 300.0, 250.0], "fast": [100.0, 240.0, 150.0]}
    for variant, ms in times.items():
        for i, value in enumerate(ms, 1):
            (tmp_path / f"{variant}_{i}.json").write_text(json.dumps(
                {"ms_per_iteration": value, "commit": f"{variant}abcdef0", "machine": "cpu A", "threads": 1,
                 "matmul_gflop_per_second": 150.0 + i, "gin_files": ["x.gin"], "global_batch": 32,
                 "iterations_timed": 30}))
    out = tmp_path / "t.md"
    run = [sys.executable, "tools/ab_report.py", f"--records={tmp_path}", f"--output={out}"]
    result = subprocess.run(run + ["--baseline=base"], capture_output=True, text=True, cwd=REPO, timeout=60,
                            env={**os.environ, "PYTHONPATH": "tools"})
    assert result.returncode == 0, result.stderr
    table = out.read_text()
    assert "| base | 200.0, 300.0, 250.0 | 250.0 | 1.000 |" in table
    assert "| fast | 100.0, 240.0, 150.0 | 150.0 | 0.600 |" in table  # ratios 0.5, 0.8, 0.6
    assert "machine: cpu A; float32 4096^3 matmul 151-153 GFLOP/s" in table and "fast fastabc" in table
    out.unlink()
    missing = subprocess.run(run + ["--baseline=slow"], capture_output=True, text=True, cwd=REPO, timeout=60,
                             env={**os.environ, "PYTHONPATH": "tools"})
    assert missing.returncode == 2 and "no records of the baseline 'slow'" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not out.exists()
    # A variant timed in other rounds than the baseline, or records of another machine: refused, not averaged.
    (tmp_path / "fast_3.json").rename(tmp_path / "fast_4.json")
    other = subprocess.run(run + ["--baseline=base"], capture_output=True, text=True, cwd=REPO, timeout=60,
                           env={**os.environ, "PYTHONPATH": "tools"})
    assert other.returncode == 2 and "fast was timed in rounds [1, 2, 4], the baseline in [1, 2, 3]" in other.stderr
    (tmp_path / "fast_4.json").rename(tmp_path / "fast_3.json")
    record = json.loads((tmp_path / "fast_2.json").read_text())
    (tmp_path / "fast_2.json").write_text(json.dumps({**record, "machine": "cpu B"}))
    machines = subprocess.run(run + ["--baseline=base"], capture_output=True, text=True, cwd=REPO, timeout=60,
                              env={**os.environ, "PYTHONPATH": "tools"})
    assert machines.returncode == 2 and "the records differ in machine" in machines.stderr and not out.exists()
