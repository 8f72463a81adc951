"""Where in which training photo a submitted image comes from: region search and alignment.

A crop of a training photo is not near the photo's global features, so the training side is
made searchable at the positions and scales a cropper uses, from pixels already cached (no
extra Inception forward):

* the **canvas** of a photo is its whole frame squashed to the comparison size (the
  ``kaggle2019`` preprocessing variant); a box on the canvas maps linearly onto the photo;
* every canvas is cut along a fixed **grid of boxes** (side fractions ``GRID_FRACTIONS``,
  positions every ``GRID_STEP`` of the side, area ≥ ``MIN_AREA``), each box area-averaged to
  ``DESC`` x ``DESC`` pixels, made invariant to brightness and colour offsets (per-channel
  mean removed, unit norm) and PCA-reduced: one FAISS row per box;
* a submitted image (and its mirror) is described the same way and searched exactly; the
  best boxes name the candidate photos, and the box is then **refined** on the canvas by a
  pattern search that maximises normalised correlation (so gain and offset changes of a
  degraded replay, or the reduced contrast of a blend's residual, do not mislead it).

All functions are pure: arrays in, arrays out. Rendering uses ``torchvision.ops.roi_align``
with ``aligned=True``: a box of ``k`` x ``k`` canvas pixels rendered to ``k/2`` is exactly
the 2x2 area average, so a whole-canvas box reproduces the BOX thumbnail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch  # noqa: I001  (before FAISS: see gandit.search)
import faiss
import numpy as np
from torchvision.ops import roi_align

#: Box side fractions of the grid (a crop of ≥ 50% area has sides ≥ ~0.5 of the photo's).
GRID_FRACTIONS = (1.0, 0.84, 0.7, 0.59, 0.5)
#: Box positions every this fraction of the side.
GRID_STEP = 0.125
#: Boxes smaller than this fraction of the canvas area are not indexed.
MIN_AREA = 0.35
#: Side of a box descriptor, pixels.
DESC = 8
#: PCA dimensions of a box descriptor.
PCA_DIM = 32
#: Box refinement: first step (fraction of the canvas side) and last step (canvas pixels).
REFINE_FIRST_STEP = 1 / 16
REFINE_LAST_STEP = 1 / 16
REFINE_MAX_ITERATIONS = 48
#: Regions a cropper plausibly cut (RandomResizedCrop-like: ≥ 50% of the area, aspect 3/4–4/3),
#: with a margin: smaller or more elongated boxes are never proposed by the refinement, so an
#: honest image cannot be "explained" by a sliver of some training photo.
MIN_BOX_AREA = 0.35
MAX_BOX_ASPECT = 1.7
#: Rendering batch (boxes per roi_align call): bounds memory.
RENDER_BATCH = 65536
#: From this many box rows on (~4,500 photos), the box index is an inverted file (FAISS
#: ``IndexIVFFlat``: ``IVF_LISTS`` k-means cells, ``IVF_PROBE`` searched per query) instead of
#: an exact scan, which costs 0.1 s per image at 20,000 photos (4.5 M rows). It only proposes
#: candidates, which are then aligned and verified on pixels; what it may miss is measured in
#: BENCHMARKS.md ("Cost against 20,000 training photos") and pinned against the exact index in
#: tests/test_forensics.py.
IVF_MIN_ROWS = 1_000_000
IVF_LISTS = 1024
IVF_PROBE = 48
#: Training rows per k-means cell of the inverted file (FAISS warns below 39).
IVF_TRAIN_PER_LIST = 64


def box_grid(fractions=GRID_FRACTIONS, step: float = GRID_STEP, min_area: float = MIN_AREA) -> np.ndarray:
    """float64 (B, 4) boxes ``(x, y, w, h)`` in units of the canvas side, in a fixed order."""
    out = []
    for fh in fractions:
        for fw in fractions:
            if fw * fh < min_area - 1e-9:
                continue
            ys = np.linspace(0.0, 1.0 - fh, int(np.ceil((1.0 - fh) / step - 1e-9)) + 1)
            xs = np.linspace(0.0, 1.0 - fw, int(np.ceil((1.0 - fw) / step - 1e-9)) + 1)
            for y in ys:
                for x in xs:
                    out.append((x, y, fw, fh))
    return np.asarray(out, dtype=np.float64)


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float32 (N, 3, H, W) in [0, 1], contiguous: ``roi_align`` copies a
    channels-last input whole on every call (88 ms for a single box on 3,000 canvases, 0.1 ms
    contiguous)."""
    return torch.from_numpy(np.require(images, requirements=["C", "W"])).permute(0, 3, 1, 2).contiguous() \
        .float().div_(255.0)


def render(canvas: torch.Tensor, photo: np.ndarray, boxes: np.ndarray, size: int,
           flip: np.ndarray | None = None) -> torch.Tensor:
    """Area-averaged renders (K, 3, size, size) of ``boxes`` (K, 4) ``(x, y, w, h)`` in canvas
    pixels on ``canvas[photo]``; mirrored where ``flip``."""
    k = len(photo)
    if k == 0:
        return torch.zeros((0, 3, size, size))
    b = torch.as_tensor(np.asarray(boxes, dtype=np.float32))
    rois = torch.cat([torch.as_tensor(np.asarray(photo), dtype=torch.float32)[:, None],
                      b[:, :2], b[:, :2] + b[:, 2:]], dim=1)
    parts = [roi_align(canvas, rois[s:s + RENDER_BATCH], (size, size), 1.0, -1, True)
             for s in range(0, k, RENDER_BATCH)]
    out = torch.cat(parts)
    if flip is not None and np.any(flip):
        f = torch.as_tensor(np.asarray(flip, dtype=bool))
        out[f] = out[f].flip(-1)
    return out


def centred(x: torch.Tensor) -> torch.Tensor:
    """(K, 3, s, s) with each channel's mean removed."""
    return x - x.mean(dim=(-2, -1), keepdim=True)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Normalised correlation of (…, 3, s, s) images after removing each channel's mean."""
    b = centred(b)
    return correlation_to(a, b, (b * b).sum(dim=(-3, -2, -1)))


def correlation_to(a: torch.Tensor, b_centred: torch.Tensor, b_energy: torch.Tensor) -> torch.Tensor:
    """``correlation(a, b)`` given ``b`` already centred and its energy (sum of squares), which
    broadcast against ``a``: a target compared with many renders is prepared once."""
    a = centred(a)
    num = (a * b_centred).sum(dim=(-3, -2, -1))
    den = torch.sqrt((a * a).sum(dim=(-3, -2, -1)) * b_energy)
    return num / den.clamp_min(1e-12)


def descriptors(x: torch.Tensor) -> np.ndarray:
    """(K, 3, s, s) renders → float32 (K, 3*s*s): channel means removed, unit norm."""
    c = centred(x).reshape(len(x), -1)
    c = c / c.norm(dim=1, keepdim=True).clamp_min(1e-6)
    return c.numpy().astype(np.float32)


@dataclass
class BoxIndex:
    """Descriptors of every grid box of every canvas, PCA-reduced, in a FAISS index (exact, or an
    inverted file for large training sets: ``IVF_MIN_ROWS``)."""

    grid: np.ndarray          #: (B, 4) unit boxes
    canvas_size: tuple[int, int]   #: (width, height) of the canvases, pixels
    mean: np.ndarray          #: (3*DESC*DESC,)
    components: np.ndarray    #: (PCA_DIM, 3*DESC*DESC)
    vectors: np.ndarray       #: float32 (M*B, PCA_DIM), photo-major
    index: faiss.Index

    @property
    def boxes_per_photo(self) -> int:
        return len(self.grid)

    def project(self, desc: np.ndarray) -> np.ndarray:
        return descriptors_to_pca(desc, self.mean, self.components)

    def grid_pixels(self, ids: np.ndarray) -> np.ndarray:
        """Canvas-pixel boxes (K, 4) of grid box ids."""
        w, h = self.canvas_size
        return self.grid[ids] * np.array([w, h, w, h], dtype=np.float64)


def descriptors_to_pca(desc: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Descriptors (N, 3*DESC*DESC) projected onto the PCA axes: float32 (N, PCA_DIM)."""
    return np.ascontiguousarray((desc - mean) @ components.T, dtype=np.float32)


def fit_pca(x: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and top ``dim`` principal axes of the rows of ``x`` (deterministic: sign-fixed SVD)."""
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd((x - mean).astype(np.float64), full_matrices=False)
    comps = vt[:dim]
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    comps = comps * signs[:, None]
    if len(comps) < dim:  # fewer samples than dimensions: pad with zero axes
        comps = np.vstack([comps, np.zeros((dim - len(comps), x.shape[1]))])
    return mean.astype(np.float32), comps.astype(np.float32)


def vectors_to_ivf_index(vectors: np.ndarray, lists: int = IVF_LISTS, probe: int = IVF_PROBE) -> faiss.Index:
    """An inverted-file index of float32 rows (exact distances within the ``probe`` cells
    nearest each query), its k-means trained on every ``step``-th row (deterministic)."""
    n, d = vectors.shape
    lists = max(1, min(lists, n // IVF_TRAIN_PER_LIST))   # small sets: fewer, fuller cells
    step = max(1, n // (lists * IVF_TRAIN_PER_LIST))
    quantizer = faiss.IndexFlatL2(d)
    index = faiss.IndexIVFFlat(quantizer, d, lists, faiss.METRIC_L2)
    index.cp.seed = 1234
    index.train(np.ascontiguousarray(vectors[::step]))
    index.add(vectors)
    index.nprobe = probe
    return index


def canvases_to_box_vectors(canvases: np.ndarray, grid: np.ndarray | None = None,
                            pca_dim: int = PCA_DIM, pca_sample: int = 200_000, chunk: int = 512,
                            advance: Callable[[int], None] | None = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The PCA (mean, components) and the PCA-reduced descriptors (photo-major rows) of every
    grid box of uint8 canvases (M, H, W, 3): what a box index holds (``vectors_to_box_index``).

    Two passes over the canvases, so that the full-size descriptors (192 floats per box:
    3.4 GB for 20,000 photos) never exist at once: the first keeps every ``step``-th row for the
    PCA, the second projects each chunk. ``advance(n)`` is called with the canvases done in
    each chunk of each pass (2M in all)."""
    grid = box_grid() if grid is None else grid
    m, h, w = canvases.shape[:3]
    n_boxes = len(grid)
    scale = np.array([w, h, w, h], dtype=np.float64)
    advance = advance or (lambda n: None)

    def chunk_descriptors(s: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Descriptors of the chunk's rows (all, or the given row numbers within the chunk)."""
        block = images_to_tensor(canvases[s:s + chunk])
        rows = np.arange(len(block) * n_boxes) if rows is None else rows
        out = descriptors(render(block, rows // n_boxes, grid[rows % n_boxes] * scale, DESC))
        advance(len(block))
        return out

    total = m * n_boxes
    if not total:
        return (np.zeros(3 * DESC * DESC, np.float32), np.zeros((pca_dim, 3 * DESC * DESC), np.float32),
                np.zeros((0, pca_dim), np.float32))
    step = max(1, total // pca_sample)
    sample = []
    for s in range(0, m, chunk):     # the PCA's sample: every ``step``-th row, and only those rendered
        first, k = s * n_boxes, min(chunk, m - s)
        sample.append(chunk_descriptors(s, np.arange((-first) % step, k * n_boxes, step)))
    mean, comps = fit_pca(np.concatenate(sample), pca_dim)
    return mean, comps, np.concatenate([descriptors_to_pca(chunk_descriptors(s), mean, comps)
                                        for s in range(0, m, chunk)])


def vectors_to_box_index(grid: np.ndarray, canvas_size: tuple[int, int], mean: np.ndarray, components: np.ndarray,
                         vectors: np.ndarray, ivf_min_rows: int = IVF_MIN_ROWS) -> BoxIndex:
    """The box index of ``canvases_to_box_vectors``' arrays: an exact index, or from
    ``ivf_min_rows`` rows on an inverted file (``vectors_to_ivf_index``, deterministic)."""
    index = BoxIndex(grid, canvas_size, mean, components, vectors, faiss.IndexFlatL2(vectors.shape[1]))
    if len(vectors) >= ivf_min_rows:
        index.index = vectors_to_ivf_index(vectors)
    else:
        index.index.add(vectors)
    return index


def canvases_to_box_index(canvases: np.ndarray, grid: np.ndarray | None = None,
                          pca_dim: int = PCA_DIM, pca_sample: int = 200_000,
                          chunk: int = 512, ivf_min_rows: int = IVF_MIN_ROWS) -> BoxIndex:
    """Index every grid box of uint8 canvases (M, H, W, 3): exactly, or from ``ivf_min_rows``
    rows on, in an inverted file (``canvases_to_box_vectors``, then ``vectors_to_box_index``)."""
    grid = box_grid() if grid is None else grid
    h, w = canvases.shape[1:3]
    return vectors_to_box_index(grid, (w, h), *canvases_to_box_vectors(canvases, grid, pca_dim, pca_sample, chunk),
                                ivf_min_rows=ivf_min_rows)


@dataclass
class Candidate:
    photo: int
    box: np.ndarray      #: (4,) canvas pixels (x, y, w, h)
    flip: bool
    distance: float      #: squared L2 between PCA descriptors (lower is closer)


def query_descriptors(thumbs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of (N, 3, s, s) query images and of their mirrors."""
    small = torch.nn.functional.adaptive_avg_pool2d(thumbs, DESC) if thumbs.shape[-1] != DESC else thumbs
    return descriptors(small), descriptors(small.flip(-1))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return float(inter / max(a[2] * a[3] + b[2] * b[3] - inter, 1e-12))


def faiss_search(index: faiss.Index, queries: np.ndarray, k: int,
                 threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` on ``threads`` OpenMP threads (FAISS shares torch's OpenMP pool, which
    the forensics run on one thread), the pool restored after."""
    if threads is None:
        return index.search(queries, k)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        return index.search(queries, k)
    finally:
        faiss.omp_set_num_threads(before)


def search_candidates(index: BoxIndex, query: np.ndarray, mirrored: np.ndarray, k: int,
                      extra: list[list[int]] | None = None, photos: int = 3,
                      starts: int = 2, threads: int | None = None) -> list[list[Candidate]]:
    """Per query, the ``photos`` best candidate photos with up to ``starts`` distinct starting
    boxes each (self-similar textures have look-alike regions: several starts keep the
    refinement out of the wrong one), best first.

    Photos come from the ``k`` nearest boxes of the image and of its mirror, plus ``extra``
    photos per query (e.g. Inception neighbours); every grid box of a chosen photo is scored.
    ``threads``: FAISS threads for the search (``faiss_search``).
    """
    n = len(query)
    out: list[list[Candidate]] = [[] for _ in range(n)]
    if n == 0 or index.index.ntotal == 0:
        return out
    pq, pm = index.project(query), index.project(mirrored)
    kk = min(k, index.index.ntotal)
    d0, i0 = faiss_search(index.index, pq, kk, threads)
    d1, i1 = faiss_search(index.index, pm, kk, threads)
    b = index.boxes_per_photo
    for q in range(n):
        nearest: dict[int, float] = {}
        for dist, ids in ((d0[q], i0[q]), (d1[q], i1[q])):
            for d, i in zip(dist, ids):
                if i >= 0:
                    photo = int(i) // b
                    nearest[photo] = min(nearest.get(photo, np.inf), float(d))
        for photo in (extra[q] if extra else []):
            if photo >= 0 and photo not in nearest:
                rows = index.vectors[photo * b:(photo + 1) * b]
                nearest[photo] = float(min(((rows - pq[q]) ** 2).sum(axis=1).min(),
                                           ((rows - pm[q]) ** 2).sum(axis=1).min()))
        chosen = sorted(nearest.items(), key=lambda kv: (kv[1], kv[0]))[:photos]
        for photo, _ in chosen:
            rows = index.vectors[photo * b:(photo + 1) * b]
            dist = np.concatenate([((rows - pq[q]) ** 2).sum(axis=1), ((rows - pm[q]) ** 2).sum(axis=1)])
            picked: list[Candidate] = []
            for j in np.argsort(dist, kind="stable"):
                box = index.grid_pixels(np.array([j % b]))[0]
                flip = bool(j >= b)
                if any(c.flip == flip and box_iou(c.box, box) > 0.5 for c in picked):
                    continue
                picked.append(Candidate(photo, box, flip, float(dist[j])))
                if len(picked) == starts:
                    break
            out[q].extend(picked)
    return out


#: Moves of the pattern search, in units of the step: each edge in and out, and shifts.
_MOVES = np.array([[-1, 0, 1, 0], [1, 0, -1, 0],      # left edge out / in
                   [0, 0, 1, 0], [0, 0, -1, 0],        # right edge out / in
                   [0, -1, 0, 1], [0, 1, 0, -1],       # top edge out / in
                   [0, 0, 0, 1], [0, 0, 0, -1],        # bottom edge out / in
                   [-1, 0, 0, 0], [1, 0, 0, 0],        # shift left / right
                   [0, -1, 0, 0], [0, 1, 0, 0]],       # shift up / down
                  dtype=np.float64)


def clamp_boxes(boxes: np.ndarray, width: int, height: int, min_fraction: float = 0.2) -> np.ndarray:
    b = boxes.copy()
    b[..., 2] = np.clip(b[..., 2], min_fraction * width, width)
    b[..., 3] = np.clip(b[..., 3], min_fraction * height, height)
    b[..., 0] = np.clip(b[..., 0], 0.0, width - b[..., 2])
    b[..., 1] = np.clip(b[..., 1], 0.0, height - b[..., 3])
    return b


def plausible(boxes: np.ndarray, width: int, height: int, photo_aspect: np.ndarray) -> np.ndarray:
    """Boxes (..., 4) on a canvas that a cropper could have cut: area ≥ ``MIN_BOX_AREA`` of
    the canvas, aspect in the photo's own pixels within 1/``MAX_BOX_ASPECT``–``MAX_BOX_ASPECT``.
    ``photo_aspect``: width / height of each photo, broadcast against the leading shape."""
    area = boxes[..., 2] * boxes[..., 3] / (width * height)
    aspect = (boxes[..., 2] / width) / np.maximum(boxes[..., 3] / height, 1e-9) * photo_aspect
    hi = np.maximum(MAX_BOX_ASPECT, photo_aspect * 1.02)        # the whole photo is always plausible
    lo = np.minimum(1.0 / MAX_BOX_ASPECT, photo_aspect / 1.02)
    return (area >= MIN_BOX_AREA - 1e-9) & (aspect <= hi) & (aspect >= lo)


class TriedBoxes:
    """The boxes each search of ``refine_boxes`` has rendered (its start included), exactly as
    float64 coordinates. A box rendered before scored at most its search's score then, plus the
    1e-7 a move must gain by, and a search's score only rises: rendered again it cannot be the
    move taken, so it is not rendered again. The search's moves retrace boxes often (a step
    left then one right at half the step lands where the coarser step went; an edge moved
    out then the box shifted back is the other edge moved out): 22% of the 16x16 renders and
    20% of the 32x32 ones of seed 1's benchmark images (140 photos-held-once images)."""

    def __init__(self, boxes: np.ndarray):
        self.seen = set(self._keys(np.arange(len(boxes)), boxes))

    @staticmethod
    def _keys(search: np.ndarray, boxes: np.ndarray) -> list[bytes]:
        rows = np.concatenate([np.asarray(search, dtype=np.float64)[:, None],
                               np.asarray(boxes, dtype=np.float64).reshape(-1, 4)], axis=1)
        return np.ascontiguousarray(rows).view(np.dtype((np.void, 40))).ravel().tolist()

    def fresh(self, search: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Which of ``boxes`` (N, 4) of searches ``search`` (N,) were not rendered before; they
        are recorded as rendered (a box asked twice in one call is fresh once)."""
        out = np.zeros(len(search), dtype=bool)
        for j, key in enumerate(self._keys(search, boxes)):
            if key not in self.seen:
                self.seen.add(key)
                out[j] = True
        return out


def refine_boxes(canvas: torch.Tensor, photo: np.ndarray, boxes: np.ndarray, flip: np.ndarray,
                 target: torch.Tensor, first_step: float | None = None,
                 last_step: float = REFINE_LAST_STEP,
                 max_iterations: int = REFINE_MAX_ITERATIONS,
                 photo_aspect: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pattern search of each box (K, 4) on ``canvas[photo]`` that maximises the correlation of
    its render with ``target`` (K, 3, s, s), among ``plausible`` boxes (``photo_aspect``: (K,)
    width / height of each photo; square when None). Returns the boxes and their correlations."""
    k = len(photo)
    if k == 0:
        return boxes.copy(), np.zeros(0)
    height, width = canvas.shape[-2:]
    size = target.shape[-1]
    step = np.full(k, (first_step if first_step is not None else REFINE_FIRST_STEP * width), dtype=np.float64)
    aspect = np.ones(k) if photo_aspect is None else np.asarray(photo_aspect, dtype=np.float64)
    boxes = clamp_boxes(np.asarray(boxes, dtype=np.float64), width, height)
    tc = centred(target)
    te = (tc * tc).sum(dim=(-3, -2, -1))
    score = correlation_to(render(canvas, photo, boxes, size, flip), tc, te).numpy().astype(np.float64)
    score = np.where(plausible(boxes, width, height, aspect), score, -np.inf)
    active = np.ones(k, dtype=bool)
    tried = TriedBoxes(boxes)
    for _ in range(max_iterations):
        act = np.flatnonzero(active)
        if act.size == 0:
            break
        trial = boxes[act, None, :] + _MOVES[None] * step[act, None, None]      # (A, 12, 4)
        trial = clamp_boxes(trial, width, height)
        # Only moves that can gain are rendered: not an implausible box (scored -inf), nor one
        # the canvas edge clamped back onto the current box (its score: no gain; at a whole
        # canvas that is 8 of the 12), nor a box this search has rendered before (``TriedBoxes``).
        useful = plausible(trial, width, height, aspect[act, None]) & (trial != boxes[act, None, :]).any(axis=-1)
        rows, moves = np.nonzero(useful)
        fresh = tried.fresh(act[rows], trial[rows, moves])
        rows, moves = rows[fresh], moves[fresh]
        s = np.full(useful.shape, -np.inf)
        if len(rows):
            rendered = render(canvas, photo[act[rows]], trial[rows, moves], size, flip[act[rows]])
            r = torch.as_tensor(act[rows])
            s[rows, moves] = correlation_to(rendered, tc[r], te[r]).numpy().astype(np.float64)
        best = s.argmax(axis=1)
        gain = s[np.arange(len(act)), best] > score[act] + 1e-7
        moved = act[gain]
        boxes[moved] = trial[np.flatnonzero(gain), best[gain]]
        score[moved] = s[np.flatnonzero(gain), best[gain]]
        stay = act[~gain]
        step[stay] /= 2.0
        active[stay[step[stay] < last_step]] = False
    return boxes, score
