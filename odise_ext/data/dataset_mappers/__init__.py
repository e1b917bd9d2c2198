from .panoptic_lsj import PanopticLSJMapper

__all__ = ["PanopticLSJMapper"]
