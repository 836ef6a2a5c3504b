#!/usr/bin/env python3
"""Real labelled series for `omen detect`, from the aeon package's bundled anomaly data sets
(BSD-3-Clause; the wheel is downloaded from PyPI, not installed):

  KDD-TSAD 135 (UCR anomaly archive, InternalBleeding16, test part)   1 series
  Daphnet S06R02E0 (freezing of gait, 9 accelerometer channels)       9 series
  ecg-diff-count-3 (GutenTAG ECG, test part)                           1 series

Usage: detect_aeon.py WHEEL OUTDIR
Writes OUTDIR/metrics.csv (long CSV `ts,service,metric,value`, one sample per minute from
2026-01-01: the series' own spacing does not matter to a detector on a step grid) and
OUTDIR/labels.csv (`omen detect --labels`: each run of `is_anomaly` = 1 is one window).
"""
import csv
import datetime as dt
import io
import sys
import zipfile

SETS = [
    ("kdd_tsad_135", "aeon/datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv"),
    ("daphnet_s06r02e0", "aeon/datasets/data/Daphnet_S06R02E0/S06R02E0.csv"),
    ("ecg_diff_count_3", "aeon/datasets/data/UnitTest/ecg-diff-count-3_TEST.csv"),
]
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def at(i):
    return (T0 + dt.timedelta(minutes=i)).isoformat()


def main():
    wheel, out = sys.argv[1], sys.argv[2]
    z = zipfile.ZipFile(wheel)
    with open(f"{out}/metrics.csv", "w") as m, open(f"{out}/labels.csv", "w") as lab:
        m.write("ts,service,metric,value\n")
        lab.write("service,series,start,end\n")
        for name, path in SETS:
            rows = list(csv.DictReader(io.TextIOWrapper(z.open(path))))
            channels = [c for c in rows[0] if c not in ("timestamp", "is_anomaly")]
            metrics = [name if len(channels) == 1 else f"{name}_{c.replace('-', '_')}" for c in channels]
            for i, r in enumerate(rows):
                for c, metric in zip(channels, metrics):
                    m.write(f"{at(i)},aeon,{metric},{r[c]}\n")
            flags = [float(r["is_anomaly"]) > 0 for r in rows]
            i = 0
            while i < len(flags):
                if flags[i]:
                    j = i
                    while j + 1 < len(flags) and flags[j + 1]:
                        j += 1
                    for metric in metrics:
                        lab.write(f"aeon,{metric},{at(i)},{at(j)}\n")
                    i = j + 1
                else:
                    i += 1


if __name__ == "__main__":
    main()
