"""The three learned quality networks; importing this package registers them.

=============  ==========================================  =====================  ================
name           network                                     scorer input           score direction
=============  ==========================================  =====================  ================
``msm``        restoration U-Net, masked input-prediction  slice (B, 1, H, W)     lower is better
               distance (:mod:`qcgate.models.nets.msm`)
``hysnet``     3D ResNet + hyper-network regressor         patch (B, 1, D, H, W)  higher is better
               (:mod:`qcgate.models.nets.hysnet`)
``rank_effnet`` EfficientNet-style scorer trained from     slice (B, 1, H, W)     higher is better
               pairwise rankings (:mod:`qcgate.models.nets.rank_effnet`)
=============  ==========================================  =====================  ================
"""

from qcgate.models.nets.hysnet import HySNet, HySNetConfig
from qcgate.models.nets.msm import MSMConfig, MSMNet, MSMScorer
from qcgate.models.nets.rank_effnet import PairwiseClassifier, RankEffNet, RankEffNetConfig
from qcgate.models.nets.spec import InputKind, ScorerSpec

__all__ = [
    "HySNet",
    "HySNetConfig",
    "InputKind",
    "MSMConfig",
    "MSMNet",
    "MSMScorer",
    "PairwiseClassifier",
    "RankEffNet",
    "RankEffNetConfig",
    "ScorerSpec",
]
