"""Unit 11 — Fine-tuning a pretrained transformer (SST-2) (planned: no flow yet)."""

from pipeline.units.spec import Reference, UnitSpec

SPEC = UnitSpec(
    id="unit11",
    number=11,
    title="Fine-tuning a pretrained transformer (SST-2)",
    phase=3,
    topics=(
        "tokenisation",
        "pretrained encoders and transfer learning",
        "fine-tuning schedules",
        "evaluation on GLUE-style tasks",
    ),
    challenge=("Fine-tune a pretrained transformer on SST-2 and compare it with a from-scratch baseline."),
    datasets=("sst2",),
    references=(
        Reference("SST-2 dev accuracy of DistilBERT fine-tuned", "0.913",
                  "Sanh et al. 2019, “DistilBERT, a distilled version of BERT”, Table 1 (GLUE dev)",
                  "test_accuracy"),
        Reference("SST-2 dev accuracy of BERT-base fine-tuned", "0.927", "same table", "test_accuracy"),
    ),
)
