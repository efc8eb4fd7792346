"""A small workspace with known content, written by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Cell = tuple[str, str] | tuple[str, str, str]


def notebook(cells: list[Cell]) -> str:
    out: list[dict[str, Any]] = []
    for i, cell in enumerate(cells):
        kind, source = cell[0], cell[1]
        entry: dict[str, Any] = {"id": f"cell-{i}", "metadata": {}, "source": source}
        if kind == "md":
            entry["cell_type"] = "markdown"
        else:
            outputs = (
                [{"output_type": "stream", "name": "stdout", "text": cell[2]}]
                if len(cell) > 2
                else []
            )
            entry.update(cell_type="code", execution_count=i, outputs=outputs)
        out.append(entry)
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": out}, indent=1)


SENSORS: list[Cell] = [
    ("md", "# Weather station pipeline\n\nReadings from the rooftop stations."),
    ("md", "## Loading"),
    ("code", "import pandas as pd\nraw = pd.read_csv('stations.csv', parse_dates=['time'])"),
    ("md", "## Cleaning"),
    (
        "code",
        "def drop_outliers(frame, limit=3.0):\n"
        "    z = (frame - frame.mean()) / frame.std()\n"
        "    return frame[(z.abs() < limit).all(axis=1)]\n\n"
        "clean = drop_outliers(raw.dropna())\n"
        "print(len(raw) - len(clean), 'rows removed')",
        "412 rows removed\n",
    ),
    ("md", "## Resampling"),
    ("code", "hourly = clean.set_index('time').resample('1h').mean()"),
    ("md", "## Plotting"),
    ("code", "hourly.plot(y=['temperature', 'humidity'], figsize=(12, 4))"),
]

REVENUE: list[Cell] = [
    ("md", "# Revenue report"),
    ("code", "orders = pd.read_parquet('orders.parquet')"),
    ("md", "## Revenue by region"),
    (
        "code",
        "monthly = orders.groupby([orders.date.dt.to_period('M'), 'region']).amount.sum()\n"
        "monthly.unstack().plot(kind='bar', stacked=True)",
    ),
    ("md", "## Top customers"),
    ("code", "orders.groupby('customer').amount.sum().nlargest(10)"),
]

TRAIN: list[Cell] = [
    ("md", "# Churn model"),
    (
        "code",
        "from sklearn.ensemble import RandomForestClassifier\n"
        "model = RandomForestClassifier(n_estimators=300, random_state=0)",
    ),
    ("md", "## Evaluation"),
    (
        "code",
        "from sklearn.model_selection import cross_val_score\n"
        "scores = cross_val_score(model, X, y, cv=5, scoring='roc_auc')\n"
        "print(scores.mean())",
        "0.874\n",
    ),
]

BILLING = '''"""Invoices and reminders."""

TAX_RATE = 0.2


def compute_invoice_total(items, tax_rate=TAX_RATE):
    """Sum of the line items, tax included."""
    subtotal = sum(item.price * item.quantity for item in items)
    return round(subtotal * (1 + tax_rate), 2)


class CustomerRegistry:
    """Customers by id."""

    def __init__(self):
        self._by_id = {}

    def add(self, customer):
        self._by_id[customer.id] = customer


def send_reminder_email(customer, invoice):
    subject = f"Invoice {invoice.number} is due"
    return mailer.send(customer.email, subject)
'''

README = """# Station analytics

Notebooks for the weather station data and the sales reports.

## Setup

Create a virtual environment and install the requirements with pip.

## Data sources

Station readings arrive nightly as CSV files over SFTP.
"""


def write_corpus(root: Path) -> dict[str, Path]:
    files = {
        "analysis/sensors.ipynb": notebook(SENSORS),
        "analysis/revenue.ipynb": notebook(REVENUE),
        "ml/train.ipynb": notebook(TRAIN),
        "lib/billing.py": BILLING,
        "README.md": README,
    }
    out = {}
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        out[rel] = path
    return out
