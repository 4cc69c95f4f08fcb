"""The operators as augmentations of the libraries people already train with.

``skyclear.degrade.augment.albumentations``: albumentations transforms (install the extra
``skyclear[albumentations]``). ``skyclear.degrade.augment.kornia``: kornia batched
augmentations. Both are thin adapters over the same operators and functional core; this
package is the only part of skyclear that imports those libraries, and only when one of
its modules is imported.
"""

from __future__ import annotations

from typing import Any


def seed_from(draw: int) -> int:
    """A generator seed from a library's draw, made distinct per DataLoader worker.

    Libraries that keep their own random state (albumentations' ``Compose(seed=...)``)
    hand every forked worker the same state, so workers would repeat one another. Mixing
    in the worker's seed, which torch derives from the main process's RNG per worker and
    epoch, makes the degradations of each worker different and still reproducible under
    ``torch.manual_seed``. It does this for skyclear's transforms only: the library's own
    transforms in the same pipeline (crops, flips) still share the state; reseed the whole
    pipeline per worker in ``worker_init_fn`` for those (see docs/augmentations.md).
    """
    import torch.utils.data

    from ..seeding import entropy_seed

    info: Any = torch.utils.data.get_worker_info()
    return entropy_seed(draw) if info is None else entropy_seed(draw, int(info.seed) % 2**63)
