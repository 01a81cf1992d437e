"""The paper's own numbers, as data, each with the place in the text it comes from.

Sources (in /work/shared/paper/):

* ``ieee``: fpi-layers-ieee-access-2021.txt (Jeon, Lee, Choi, IEEE Access 2021) — the
  reference text.  Its extraction keeps the table *captions* (Table 1 at line 739, Table 2
  at line 804) but not the table bodies, so no number of Tables 1 and 2 is in that file.
* ``arxiv``: fpi-layers-arxiv-v4.txt — the same Tables 1 and 2 with their bodies
  (lines 170-173 and 187-196); the numbers below are transcribed from there.
* ``icml``: fpi-layer-icml-workshop.md — the workshop version; its Tables 1 and 2
  (lines 259-261 and 292-300) hold the same numbers, which confirms the transcription.

Where the paper only shows a plot (box constraint: Fig. 7; optical flow: Fig. 1) the text
gives no numbers; we record only the ordering its prose states, never a value read off a
figure.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

SOURCES = {
    "ieee": "fpi-layers-ieee-access-2021.txt",
    "arxiv": "fpi-layers-arxiv-v4.txt",
    "icml": "fpi-layer-icml-workshop.md",
}

# --- Table 1: denoising PSNR (dB, higher is better) ------------------------------------
# arXiv v4 Table 1 (lines 170-173); ICML workshop Table 1 (lines 259-261), same values.
# The paper trains and tests on grey 180x180 Flying Chairs crops (400 train / 100 test;
# IEEE Access §IV-A lines 733-737, appendix line 927), not on BSD68; its FPI_NN was trained with backward FPI.
DENOISE_PSNR: dict[tuple[str, int], float] = {
    ("feedforward", 15): 32.18, ("feedforward", 20): 30.44, ("feedforward", 25): 29.09,
    ("fpi_nn", 15): 32.43, ("fpi_nn", 20): 31.00, ("fpi_nn", 25): 29.74,
}
DENOISE_SIGMAS = (15, 20, 25)
DENOISE_SOURCE = "arXiv v4 Table 1 (lines 170-173) = ICML workshop Table 1; IEEE Access Table 1 (caption at line 739, body not in the text)"
DENOISE_TEST_SET = "100 grey 180x180 Flying Chairs crops (IEEE Access §IV-A and appendix, line 927)"


@dataclass(frozen=True)
class QuotedRow:
    """One row of a paper table: ``model`` is our model name when the row is the paper's own method."""

    name: str
    value: float
    reference: str
    model: Optional[str] = None
    training_data_only: bool = True


# --- Table 2: Bibtex example F1 (%, higher is better) ---------------------------------
# arXiv v4 Table 2 (lines 187-196, reference numbers as printed there); ICML workshop
# Table 2 (lines 292-300) names the references.  The first six rows are baselines the
# paper quotes from other papers; DVN (adversarial) uses adversarial data augmentation
# (IEEE Access lines 795-801), the others only the training data.
BIBTEX_F1: tuple[QuotedRow, ...] = (
    QuotedRow("MLP", 38.9, "[9] Belanger & McCallum 2016"),
    QuotedRow("Feedforward net", 39.6, "[5] Amos et al. 2017"),
    QuotedRow("SPEN", 42.2, "[9] Belanger & McCallum 2016"),
    QuotedRow("ICNN", 41.5, "[5] Amos et al. 2017"),
    QuotedRow("DVN (GT)", 42.9, "[8]"),
    QuotedRow("DVN (adversarial)", 44.7, "[13] Gygli et al. 2017", training_data_only=False),
    QuotedRow("FPI_GD layer (paper)", 43.2, "the paper", model="fpi_gd"),
    QuotedRow("FPI_NN layer (paper)", 43.4, "the paper", model="fpi_nn"),
)
BIBTEX_SOURCE = "arXiv v4 Table 2 (lines 187-196) = ICML workshop Table 2; IEEE Access Table 2 (caption at line 804, body not in the text)"

# --- Box constraint (IEEE Access appendix C, Fig. 7): test MSE, lower is better -------
# No numbers in the text (Fig. 7 is a plot).  Ordering from the Fig. 7 caption (lines 1021-1023:
# "The FPI_GD and FPI_NN networks performed better than the feedforward network") and the
# text (lines 1025-1027: "FPI_NN outperformed the other networks in both training and test
# losses"): best first.
BOX_CONSTRAINT_ORDER = ("fpi_nn", "fpi_gd", "feedforward")
BOX_CONSTRAINT_SOURCE = "IEEE Access appendix C, Fig. 7 caption and text (lines 1021-1027)"
BOX_CONSTRAINT_BUDGET = "40 epochs, batch 100, 10,000 train / 1,000 test samples (IEEE Access lines 1013-1019)"

# --- Optical flow (IEEE Access §IV-B, Fig. 1; appendix B-B): aEPE, lower is better ----
# No numbers in the text (Fig. 1 is a plot).  FlowNetS + FPI layer improves on FlowNetS
# ("a noticeable improvement in performance with the FPI layer", lines 777-779); a
# feedforward module of the same structure made FlowNetS worse (lines 969-973).  Best first.
OPTICAL_FLOW_ORDER = ("fpi_nn", "flownets", "feedforward")
OPTICAL_FLOW_SOURCE = "IEEE Access §IV-B (Fig. 1, lines 775-779) and appendix B-B (lines 969-973)"

# The paper's own solver pair: a plain fixed-point iteration forward and the backward FPI (§3.2).
PAPER_METHOD = ("picard", "backward_fpi")

PAPER_ORDER = {"box_constraint": BOX_CONSTRAINT_ORDER, "optical_flow": OPTICAL_FLOW_ORDER}
