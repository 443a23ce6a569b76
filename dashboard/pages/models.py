"""Models: runs side by side with their baselines, and one run's test-split diagnostics."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import streamlit as st

from bookcast.paths import runs_dir
from dashboard import charts, data, layout

st.title("Models")
root = layout.root()
summaries = data.run_summaries(root, data.files_stamp(runs_dir(Path(root)), "*/*.json"))
if summaries.is_empty():
    layout.show_next_step("runs", f"There are no runs under {root}/runs yet. Train one "
                          "(it needs a features dataset) with:")
    st.stop()

st.subheader("Runs")
layout.show_table(summaries, "runs_table")

ids = summaries["run_id"].to_list()
compared = st.multiselect("Compare runs", ids, default=ids[:3], key="models_compare")
if compared:
    loaded = {r: data.load_run(root, r) for r in compared}
    table = data.metrics_table({r: f.metrics for r, f in loaded.items()})
    if not table.is_empty():
        st.plotly_chart(charts.macro_f1_figure(table), key="macro_f1_chart")
        layout.show_table(table, "metrics_table")
        st.caption("macro-F1 and per-class figures score the trading rule (trade only where "
                   "the expected edge pays the round trip). AP up / AP down score the "
                   "probabilities alone: average precision above the base rate means the "
                   "estimator ranks moves better than chance, even when its rule never trades.")

st.subheader("One run")
run_id = st.selectbox("Run", ids, key="models_run")
run = data.load_run(root, run_id)
facts = st.columns(5)
for column, (label, value) in zip(facts, (
        ("model", run.run.get("model")), ("horizon", run.run.get("horizon")),
        ("symbol", run.run.get("symbol")),
        ("fee (bps/side)", run.run.get("fee_bps")),
        ("test macro-F1", None if data.get(run.metrics, "macro_f1") is None
         else f"{run.metrics['macro_f1']:.3f}")), strict=True):
    column.metric(label, "-" if value is None else str(value))
verdict = run.metrics.get("verdict")
if isinstance(verdict, str):
    (st.warning if "NOT" in verdict else st.success)(verdict)

estimators = data.estimator_metrics(run.metrics)
# Test-split probabilities of the model and of each baseline, for the PR and calibration plots.
predictions = {"model": run.predictions} if run.predictions is not None else {}
if run.baseline_predictions is not None and "baseline" in run.baseline_predictions.columns:
    for (name,), part in run.baseline_predictions.group_by("baseline", maintain_order=True):
        predictions[str(name)] = part.drop("baseline")
left, right = st.columns(2)
with left:
    shown = st.selectbox("Confusion matrix of", list(estimators), key="models_confusion_of")
    st.plotly_chart(charts.confusion_figure(
        data.get(estimators[shown], "confusion"), f"{shown}: label against signal (test)"),
        key="confusion_chart")
with right:
    st.plotly_chart(charts.calibration_figure(predictions), key="calibration_chart")
up, down = st.columns(2)
with up:
    st.plotly_chart(charts.pr_figure(predictions, "up"), key="pr_up_chart")
with down:
    st.plotly_chart(charts.pr_figure(predictions, "down"), key="pr_down_chart")

st.subheader("Behavioural tests")
if run.behavioural is None:
    st.info("This run stored no behavioural test results (metrics.json key `behavioural` "
            "or a behavioural.json beside it).")
elif isinstance(run.behavioural, dict) and all(isinstance(v, dict)
                                               for v in run.behavioural.values()):
    st.dataframe(pl.DataFrame([{"test": k, **v} for k, v in run.behavioural.items()],
                              infer_schema_length=None), hide_index=True,
                 key="behavioural_table")
else:
    st.json(run.behavioural)
