"""Per-image forensics: how each submitted image was made from training images, if it was.

For every submitted image, in batches (cost linear in the submission):

1. **copy** — the copy detector (``copy.py``) compares it with both preprocessing variants
   of its Inception and pixel neighbours, as is and mirrored;
2. **search and align** — the box index (``align.py``) proposes candidate photos and
   regions; the best are refined on the canvas, first at 16x16, then at 32x32;
3. **crop** — the best aligned region is scored like a copy (PSNR and explained variance at
   32x32 and 16x16, ``copy.agreement_to_score``), and, given the photos, on point samples of
   its photo (a NEAREST crop, ``point_crop``); where the box slid along an axis explains the
   image about as well (a band or streak, no place singled out: ``CROP_SLIDE``), on stricter
   levels (``CROP_STRICT_LEVELS``);
4. **blend** — the best whole preprocessed training images are searched exactly
   (``whole.py``); the residual left by the best single source is searched (whole images and
   regions) and aligned in its turn; the image is decomposed over all candidate sources by
   NNLS (``blend.py``); it is a blend when two or more photos are significant, and the mix is
   scored like a copy, or, when a source is faint (``STRONG_RATIO``), on whether it
   reproduces the image to about its uint8 rounding (``FAINT_BLEND_LEVELS``); where the mix
   is that close (``EXACT_GATE_PSNR32``), the image is tested for being, value for value, the
   rounded mix of two exact training images (``exact_blend``), which then names them; where
   no pair of candidates is and a second source of a cheater's weights could make one, every
   training photo is ranked as the second source (``_exhaustive_second_sources``) and the image
   decided again; the best whole photo, and the photo whose symmetric part is nearest the
   image's (``whole.search_symmetric``), are also decomposed over themselves as they are and
   mirrored, which names a mix of a photo with its own mirror image (``MIRROR_MIN_WEIGHT``);
5. **replay** — coarse agreement of the best aligned region or mix (``replay.py``), tested
   against other photos' regions (``_runner_ups``); a 0.9/0.1 mixed replay is tested with its
   second source (the *partner*, from the residual search, or the best region's own mirror
   image) in every fit, its own-photo ratio test included, and names both where the mix scores
   at least the single region, or where the partner removes a good share of what that region
   leaves (``PARTNER_NAMED_GAIN``).

The kind is the first that fits (score ≥ its threshold) in the order copy, crop, blend,
replay, where copy and crop fit only when a single photo explains the image (a 0.99/0.01
mix is a blend naming both). Pure: arrays in, findings out; no file is read here (photos come
only through the caller's ``photos`` loader).
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from gandit.forensics.align import (REFINE_MAX_ITERATIONS, BoxIndex, Candidate, correlation, images_to_tensor,
                                    query_descriptors, refine_boxes, render, search_candidates)
from gandit.forensics.blend import (exact_pair_to_blend, main_column, pixels_to_search_sums,
                                    second_source_candidates, second_source_possible, sources_to_blend)
from gandit.forensics import KINDS
from gandit.forensics.copy import (POINT_GATE, POINT_MIN_GAIN_DB, CopyMatch, flat_references,
                                   images_to_agreement_score, images_to_psnr32, point_renders_to_copy_score,
                                   region_to_point_renders, thumbnails_to_agreement, to_side)
from gandit.forensics.replay import (LEVELS as REPLAY_LEVELS, blur_each, gaussian_blur, parts_to_coarse_score,
                                     parts_to_partnered_replay_score, parts_to_replay_score, pool, renders_to_added_gain16,
                                     renders_to_blur_matched, renders_to_coarse_parts, renders_to_detail16,
                                     renders_to_partnered16, renders_to_partnered_fit16, renders_to_psnr16,
                                     renders_to_replay_parts, unexplained_ratio)
from gandit.forensics.whole import (WholeIndex, WholeMatch, pixels_to_whole_index, search_symmetric,
                                    search_whole)
from gandit.parallel import map_batches
from gandit.progress import SILENT, ProgressReporter

#: Queries per batch (bounds memory: renders of all candidates of a batch).
BATCH = 256
#: Box-index neighbours searched per image (and per mirror), photos kept, starts per photo.
K_BOXES = 16
PHOTOS = 3
STARTS = 2
#: Aligned candidates kept after the coarse pass, per image.
FINE = 2
#: A candidate kept whose coarse correlation (16x16) is below this is not refined at 32x32: its
#: coarse box stands (its 32x32 correlation is measured once). No detector can fit from it: a
#: crop needs 0.93 of the image explained at 32x32 (correlation ≥ 0.96), the replay's gate 0.8 at
#: 16x16 (≥ 0.89), and the fine pass adds little (95% of benchmark crops' correlations gain ≤ 0.013
#: at 32x32); 60% of honest images' candidates are below it among 20,000 training photos. For
#: the residual (``_analyze_batch``), whose region is a blend's or mixed replay's second source,
#: a lower level, RESIDUAL_FINE_MIN_CORRELATION: the residuals of honest images, copies and crops
#: are mostly noise (72% of honest images' residual candidates are below it).
FINE_MIN_CORRELATION = 0.75
RESIDUAL_FINE_MIN_CORRELATION = 0.5
#: Pattern-search steps (first, last) of the coarse pass (16x16 on the half canvas, half-canvas
#: pixels) and of the fine pass (32x32 on the canvas, canvas pixels).
COARSE_STEPS = (2.0, 0.25)
FINE_STEPS = (0.5, 1 / 16)
#: The replay score's ratio test compares the best region with the best *distinct* region of up
#: to this many other photos (``_runner_ups``), for images whose best region could make a replay
#: (explained variance at 16x16 beyond the replay score's honest anchor).
RUNNER_PHOTOS = 8
#: Of those, the best distinct regions per image that are aligned at 32x32 as well.
RUNNER_FINE = 2
#: Two training regions that reproduce each other this well at 16x16 (explained variance, the
#: replay score's measure) are one content shown twice: overlapping or re-posted photos. Such a
#: runner-up is the replay's own source again, not a look-alike, and is passed over.
DUPLICATE_REGION = 0.97
#: The best region's own photo is searched for the same content elsewhere (``shifted_boxes``):
#: the box moved by up to SELF_SHIFT[1] of its side along each axis and diagonal, where the
#: canvas leaves at least SELF_SHIFT[0] of it (a move that small overlaps the box by 3/4), or
#: its halves along an axis where it cannot move.
SELF_SHIFT = (0.25, 0.5)
#: A mixed replay's partner (``_runner_ups``) is a second source only where it removes at least
#: this share of what the best region leaves at 16x16 (``replay.renders_to_added_gain16``): the
#: tenth of a 0.9/0.1 mix, where the residual search offers it, removes 0.14-0.93 (median 0.55;
#: benchmark seed 1, 40 of 50 mixes); a partner that removes a few percent is noise fitted, and
#: naming it would misstate the recipe (plain replays' best offered partners: median 0.03, 95%
#: below 0.15; with no minimum, 17 flagged plain replays were named with one).
PARTNER_MIN_GAIN = 0.2
#: A replay whose plain score beats its score as a mix still names its partner where the partner
#: removes at least this share of what the best region leaves and the mix passes its own tests in
#: part (``_decide``): the tenth of a 0.9/0.1 mix often leaves the plain tests passing, and the
#: recipe is then the mix. Measured on the benchmark's photos held once (seeds 1, 3, 5, run 38):
#: flagged 0.9/0.1 mixes naming both their photos 82 -> 107 of 132; flagged plain replays named
#: with a partner 0 -> 1 of 295 (at 0.2, by the same runs' evidence: 4); no score changes.
PARTNER_NAMED_GAIN = 0.3
#: A best region's box and its mirror across the photo are one place within this many canvas pixels.
MIRROR_PLACE_TOLERANCE = 0.5
#: A photo mixed with its own mirror image (``_decide``) is named both ways only where the lesser
#: of the two holds at least this share: below it the image is the photo as it is, to within
#: what resampling changes (a resampled copy of a nearly symmetric photo fits 5% of its mirror).
MIRROR_MIN_WEIGHT = 0.1
#: A box within this many canvas pixels of the whole canvas on every side is the whole image.
WHOLE_TOLERANCE = 1.5
#: The residual of a single source is searched when that source correlates at least this.
RESIDUAL_MIN_CORRELATION = 0.5
#: Whole preprocessed training images (``whole.py``) offered to the decomposition per image,
#: and per residual.
WHOLE_PHOTOS = 4
RESIDUAL_WHOLE_PHOTOS = 3
#: Residual whole-image matches offered to the exact decomposition (``blend.exact_pair_to_blend``):
#: the faint source of a 0.99/0.01 blend can rank below the first three (measured: ranks 3-5 for
#: 3 of 150 blends of a benchmark corpus), and exact columns cannot stand in for one another.
EXACT_RESIDUAL_PHOTOS = 8
#: The exact decomposition runs when the decomposition at 32x32 reproduces the image to this
#: PSNR (dB): a mix of exact sources, even without its faint part, reaches 45-65 dB; honest images
#: stay below the faint-blend levels' honest anchor (40 dB).
EXACT_GATE_PSNR32 = 40.0


@dataclass(frozen=True)
class Source:
    photo: int
    variant: int                     #: preprocessing variant the render comes from
    box: tuple[float, float, float, float] | None   #: canvas pixels on ``variant``; None = whole
    flip: bool
    weight: float | None = None


@dataclass(frozen=True)
class Finding:
    kind: str | None
    score: float
    scores: dict[str, float]
    sources: tuple[Source, ...] = ()
    evidence: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainPixels:
    """What forensics needs of the training side (from ``TrainFeatures``)."""

    pixels: np.ndarray               #: uint8 (M, V, H, W, 3): preprocessing variants
    canvas_variant: int              #: the whole-photo variant (crops are searched on it)
    aspects: np.ndarray | None = None   #: (M,) width / height of each photo; square when None

    #: ``blend.pixels_to_search_sums`` of ``pixels``, made on first use (``search_sums``)
    _search_sums: tuple[np.ndarray, np.ndarray] | None = field(default=None, init=False, repr=False, compare=False)

    def aspect(self, photos: np.ndarray) -> np.ndarray:
        return np.ones(len(photos)) if self.aspects is None else self.aspects[photos]

    def search_sums(self) -> tuple[np.ndarray, np.ndarray]:
        """Each variant's sums for the search of second sources over every photo
        (``blend.second_source_candidates``), made once (0.5 s at 20,000 photos; each worker
        process makes its own where it needs them)."""
        if self._search_sums is None:
            self._search_sums = pixels_to_search_sums(self.pixels)
        return self._search_sums


def to32(x: torch.Tensor) -> torch.Tensor:
    return pool(x, 32)


#: Crop agreement levels (PSNR honest, PSNR certain, explained honest, explained certain) at
#: 32x32; at 16x16 the PSNR levels are 6 dB higher, as for copies. Stricter than a copy's
#: (22, 34, 0.80, 0.99): a crop is chosen among thousands of boxes, so chance agreement is
#: larger (look-elsewhere). Measured: honest wallpaper tiles reach 0.39 with these, 0.72 with
#: the copy levels; crops 50-100% of area are found at 0.987 (BENCHMARKS.md). The explained
#: variance levels were 0.90 → 0.995 until a second benchmark corpus had an honest tile of a
#: self-similar wallpaper at 36 dB and 0.959 (crop score 0.62); at 16x16 its anchor is 0.95, not
#: 0.93, since the same tile (horizontal bands of a storm) later agreed with a training region
#: at 38.5 dB and 0.971 there (score 0.54): 16x16 has a quarter of 32x32's degrees of freedom,
#: so chance agreement among thousands of boxes is likelier (seed-0 crops: 0.960 either way).
CROP_LEVELS = {32: (26.0, 38.0, 0.93, 0.998), 16: (32.0, 44.0, 0.95, 0.998)}
#: The crop's look-elsewhere test on its own place. The aligned box is slid by CROP_SLIDE of its
#: side each way along each axis where the canvas leaves room (``slid_boxes``); the *slide
#: ratio* is what the box leaves unexplained at 32x32 over what the best slid box leaves. A crop
#: of texture is singled out by its place: 2 pixels of 32 away, its photo explains it far worse
#: (true crops that agree only partially, below 38 dB: ratios up to 0.30 on three benchmark
#: corpora and 0.27 among 20,000 overlapping training photos). A band or streak that runs along
#: an axis is not: there an honest tile of a motion-blurred road (Storm.jpg) agreed with a crop
#: of the same road elsewhere at 33.2 dB and 0.969 explained (crop score 0.58, a false flag), and
#: the box slid along the road left as much unexplained (ratio 1.00); the honest photos that come
#: closest to a training region (30-36 dB) are mostly such streaks (ratios 0.64-1.28). Past the
#: ratio's certain anchor the crop is scored on ``CROP_STRICT_LEVELS`` as well, and on those
#: alone from its honest anchor (``slide_ratio_to_part``).
CROP_SLIDE = 1 / 16
CROP_SLIDE_RATIO = (0.35, 0.7)
#: Crop levels where the place is not singled out (``CROP_SLIDE``): PSNR anchors 10 and 4 dB
#: stricter. Honest tiles whose box slides reach 36.2 dB at 32x32 (crop score 0.37 before);
#: true crops whose box slides (flat ones, NEAREST ones on their point samples, crops of a streak
#: reproduced to their resampling) agree at 42-52 dB; one at 34.1 dB, a crop of a guardrail's
#: streaks aligned 94 photo pixels off along them, is no longer flagged.
CROP_STRICT_LEVELS = {32: (36.0, 42.0, 0.93, 0.998), 16: (42.0, 48.0, 0.95, 0.998)}
#: A blend source is *faint* when leaving it out multiplies the residual energy by less than
#: this (the 0.01 part of a 0.99/0.01 blend: ~2-50x). A faint source is evidence only where
#: the mix reproduces the image to about its uint8 rounding (exact preprocessed sources: 55-65 dB
#: at 32x32), so such a blend is scored on ``FAINT_BLEND_LEVELS``; otherwise two photos of a
#: self-similar scene, searched among all whole training images and their regions, mix into
#: an honest image of the same scene at ~30 dB with each "needed" ~2x (measured: 4 of 2,200
#: honest photos flagged as blends at the copy levels, none at these).
STRONG_RATIO = 10.0
FAINT_BLEND_LEVELS = {32: (40.0, 50.0, 0.99, 0.9999), 16: (46.0, 56.0, 0.99, 0.9999)}
#: Photo pixels by which the NEAREST renders of a crop may differ from the aligned box (x, y, w, h).
POINT_CROP_JITTER = 1


def _agreement_score(query: torch.Tensor, reference: torch.Tensor, levels: dict | None = None,
                     flat: bool | None = None) -> tuple[float, float, float]:
    """Copy-style score of (3, 32, 32) float renders (``copy.images_to_agreement_score``)."""
    score, psnr, explained = images_to_agreement_score(query.permute(1, 2, 0).numpy().astype(np.float64),
                                                       reference.permute(1, 2, 0).numpy().astype(np.float64), levels,
                                                       flat)
    return float(score), float(psnr), float(explained)


def is_whole(box: np.ndarray, width: int, height: int) -> bool:
    x, y, w, h = box
    return max(abs(x), abs(y), abs(x + w - width), abs(y + h - height)) <= WHOLE_TOLERANCE


def _align(canvas64: torch.Tensor, canvas32: torch.Tensor, local: dict[int, int], cands: list[list[Candidate]],
           q16: torch.Tensor, q32: torch.Tensor, keep: int, index_width: int,
           train: TrainPixels, fine_min: float = FINE_MIN_CORRELATION) -> list[list[tuple[Candidate, float]]]:
    """Coarse (16x16 on the half canvas) then fine (32x32 on the canvas) refinement of every
    query's candidates at once (boxes in pixels of an index canvas ``index_width`` wide); a
    candidate whose coarse correlation is below ``fine_min`` keeps its coarse box. Per query,
    the ``keep`` best as (candidate with its box refined in canvas pixels, correlation at 32x32)."""
    rows = [(qi, c) for qi, cs in enumerate(cands) for c in cs]
    out: list[list[tuple[Candidate, float]]] = [[] for _ in cands]
    if not rows:
        return out
    qidx = np.array([qi for qi, _ in rows])
    photo = np.array([local[c.photo] for _, c in rows])
    flip = np.array([c.flip for _, c in rows])
    boxes = np.array([c.box for _, c in rows]) * (canvas32.shape[-1] / index_width)
    aspect = train.aspect(np.array([c.photo for _, c in rows]))
    coarse, corr = refine_boxes(canvas32, photo, boxes, flip, q16[torch.as_tensor(qidx)],
                                first_step=COARSE_STEPS[0], last_step=COARSE_STEPS[1], photo_aspect=aspect)
    chosen = []
    for qi in range(len(cands)):   # the best start of each photo, the ``keep`` best photos
        mine = np.flatnonzero(qidx == qi)
        seen: set[int] = set()
        for r in mine[np.argsort(-corr[mine], kind="stable")]:
            if np.isfinite(corr[r]) and rows[r][1].photo not in seen and len(seen) < keep:
                seen.add(rows[r][1].photo)
                chosen.append(r)
    chosen = np.array(chosen, dtype=np.int64)
    refine = corr[chosen] >= fine_min
    fine, corr = np.zeros((len(chosen), 4)), np.zeros(len(chosen))
    for sel, iterations in ((refine, REFINE_MAX_ITERATIONS), (~refine, 0)):
        if sel.any():
            at = chosen[sel]
            fine[sel], corr[sel] = refine_boxes(canvas64, photo[at], coarse[at] * 2.0, flip[at],
                                                q32[torch.as_tensor(qidx[at])], first_step=FINE_STEPS[0],
                                                last_step=FINE_STEPS[1], max_iterations=iterations,
                                                photo_aspect=aspect[at])
    for j, r in enumerate(chosen):
        c = rows[r][1]
        out[qidx[r]].append((Candidate(c.photo, fine[j], bool(flip[r]), c.distance), float(corr[j])))
    for lst in out:
        lst.sort(key=lambda t: -t[1])
    return out


def analyze_images(query_pixels, copies: list[CopyMatch | None], neighbours: np.ndarray | None,
                   train: TrainPixels, index: BoxIndex, thresholds: dict[str, float],
                   progress: ProgressReporter = SILENT, whole: WholeIndex | None = None,
                   photos: Callable[[int], np.ndarray | None] | None = None,
                   workers: int | None = None) -> list[Finding]:
    """Findings for submitted uint8 (H, W, 3) images (a list or an array). ``copies``: the copy detector's
    matches; ``neighbours``: Inception nearest training indices (N, k) or None; ``whole``: the
    index of ``train``'s whole images (``whole.pixels_to_whole_index``), built here when None;
    ``photos``: training index → uint8 photo (or None), for crops verified on point samples
    (``point_crop``); the only way photos are read here. ``workers``: batches analysed at once,
    on worker processes (``parallel.map_batches``; torch's thread count when None); every
    image's finding is the same with any number, as each image is analysed on its own."""
    n = len(query_pixels)
    if n == 0:
        return []
    cv = train.canvas_variant
    height, width = train.pixels.shape[2:4]
    threads = torch.get_num_threads()
    # Thousands of small tensor operations: one thread each is several times faster than
    # waking a thread pool for every one of them (measured: 40 s → 5 s for 40 images). FAISS
    # shares the OpenMP pool: its few large searches get ``threads`` back (align.faiss_search).
    torch.set_num_threads(1)
    # Batches on ``workers`` forked processes (``parallel.map_batches``), one torch thread each:
    # the per-image work is many small operations glued by Python, which threads run beside
    # each other only between holds of the interpreter lock (BENCHMARKS.md run 42).
    workers = max(1, threads if workers is None else int(workers))
    # Batches of at most BATCH images, as many as a multiple of ``workers``, each taking every
    # m-th image: a submission's images come in runs (sorted by name, made in turn), and their
    # cost differs by kind, so contiguous batches would keep one worker busy long after the
    # others (842 images of seven kinds on 2 workers: contiguous batches 27-57 s each, every
    # m-th image 32-35 s).
    m = workers * -(-n // (workers * BATCH))
    batches = [np.arange(b, n, m) for b in range(min(m, n))]

    def batch(rows: np.ndarray) -> list[Finding]:
        torch.set_num_threads(1)
        return _analyze_batch([query_pixels[i] for i in rows], [copies[i] for i in rows],
                              None if neighbours is None else neighbours[rows],
                              train, index, whole, thresholds, cv, width, height, max(1, threads // workers),
                              photos)
    out: list[Finding | None] = [None] * n
    try:
        whole = whole if whole is not None else pixels_to_whole_index(train.pixels)
        with progress.task("forensics", n) as advance:
            for rows, found in zip(batches, map_batches(batch, batches, workers)):
                for i, f in zip(rows, found):
                    out[i] = f
                advance(len(rows))
    finally:
        torch.set_num_threads(threads)
    return out


def images_to_query(images) -> torch.Tensor:
    """uint8 (H, W, 3) images of any sizes → float (N, 3, 32, 32) area averages in [0, 1]."""
    return torch.cat([to32(images_to_tensor(np.asarray(im)[None])) for im in images]) if len(images) \
        else torch.zeros((0, 3, 32, 32))


class ExactRenders:
    """(3, 32, 32) renders of training photos' preprocessing variants, whole, as ``exact(photo,
    variant, flip)`` gives them (mirrored when ``flip``; a new tensor each time), each made
    once per batch: an image asks for the same few photos at every step of its analysis (seed 1's
    842 benchmark images: 35 renders asked for per image, 7.5 made; each 0.16 ms). At most
    ``size`` are kept (the oldest dropped first; 12 KB each)."""

    def __init__(self, train: TrainPixels, size: int = 4096):
        self.train, self.size, self.kept = train, size, {}

    def __call__(self, photo: int, variant: int, flip: bool) -> torch.Tensor:
        t = self.kept.get((photo, variant))
        if t is None:
            t = to32(images_to_tensor(self.train.pixels[photo, variant][None]))[0]
            if len(self.kept) >= self.size:
                del self.kept[next(iter(self.kept))]
            self.kept[(photo, variant)] = t
        return t.flip(-1) if flip else t.clone()


def _analyze_batch(query_pixels, copies, neighbours, train, index, whole: WholeIndex, thresholds, cv, width,
                   height, threads: int, photos=None):
    q = images_to_query(query_pixels)
    q16 = pool(q, 16)
    exact = ExactRenders(train)
    whole_matches = search_whole(whole, q, WHOLE_PHOTOS)
    symmetric = search_symmetric(whole, q)
    desc, mdesc = query_descriptors(q)
    extra = []
    for i in range(len(q)):
        ex = [] if neighbours is None else [int(j) for j in neighbours[i, :3] if j >= 0]
        if copies[i] is not None:
            ex.insert(0, copies[i].train)
        extra.append(ex)
    cands = search_candidates(index, desc, mdesc, K_BOXES, extra, PHOTOS, STARTS, threads)

    def canvases(photos: set[int]) -> tuple[torch.Tensor, torch.Tensor, dict[int, int]]:
        ids = sorted(photos)
        local = {p: i for i, p in enumerate(ids)}
        c64 = images_to_tensor(train.pixels[ids, cv]) if ids else torch.zeros((0, 3, height, width))
        return c64, torch.nn.functional.avg_pool2d(c64, 2), local

    c64, c32, local = canvases({c.photo for cs in cands for c in cs})
    iw = index.canvas_size[0]
    aligned = _align(c64, c32, local, cands, q16, q, FINE, iw, train)

    # Residual search: what the best single source leaves, searched and aligned in its turn.
    residual_targets, residual_rows, primary = [], [], []
    for i, al in enumerate(aligned):
        qi = q[i]
        # the single source that explains the image best: the aligned region, the copy's
        # variant or the best whole variant
        offers: list[tuple[torch.Tensor, int]] = []
        if al:
            c = al[0][0]
            offers.append((render(c64, np.array([local[c.photo]]), c.box[None], 32, np.array([c.flip]))[0], c.photo))
        cp = copies[i]
        if cp is not None:
            offers.append((exact(cp.train, cp.variant, cp.flip), cp.train))
        if whole_matches[i]:
            w = whole_matches[i][0]
            offers.append((exact(w.photo, w.variant, w.flip), w.photo))
        r, best, used = None, RESIDUAL_MIN_CORRELATION, set()
        for render_, photo in offers:
            corr = float(correlation(render_, qi))
            if corr >= best:
                r, best, used = render_, corr, {photo}
        if r is not None:
            primary.append(used | {c.photo for c, _ in al[:1]} | ({cp.train} if cp is not None else set()))
            rc, qc = r - r.mean(dim=(-2, -1), keepdim=True), qi - qi.mean(dim=(-2, -1), keepdim=True)
            alpha = float((rc * qc).sum() / (rc * rc).sum().clamp_min(1e-12))
            residual_targets.append(qc - alpha * rc)
            residual_rows.append(i)
    res_aligned: dict[int, list[tuple[Candidate, float]]] = {}
    exact_extra: dict[int, list[WholeMatch]] = {}
    residual_whole: dict[int, list[WholeMatch]] = {}
    if residual_rows:
        rt = torch.stack(residual_targets)
        rdesc, rmdesc = query_descriptors(rt)
        rcands = search_candidates(index, rdesc, rmdesc, K_BOXES, None, 2, STARTS, threads)
        rcands = [[c for c in cs if c.photo not in used] for cs, used in zip(rcands, primary)]
        for i, found in zip(residual_rows, search_whole(whole, rt, EXACT_RESIDUAL_PHOTOS, primary)):
            whole_matches[i] = whole_matches[i] + found[:RESIDUAL_WHOLE_PHOTOS]
            residual_whole[i] = found[:RESIDUAL_WHOLE_PHOTOS]
            exact_extra[i] = found[RESIDUAL_WHOLE_PHOTOS:]
        rc64, rc32, rlocal = canvases({c.photo for cs in rcands for c in cs})
        residual_aligned = _align(rc64, rc32, rlocal, rcands, pool(rt, 16), rt, 1, iw, train,
                                  RESIDUAL_FINE_MIN_CORRELATION)
        for i, al in zip(residual_rows, residual_aligned):
            res_aligned[i] = al
    else:
        rc64, rlocal = c64, local
    # Partners of a mixed replay (0.9/0.1 of two photos): the residual's whole matches and
    # best region, offered to the runner-up tests as the mix's second source.
    partners: dict[int, list[tuple[torch.Tensor, Source]]] = {}
    for i in residual_rows:
        offers = [(exact(w.photo, w.variant, w.flip), Source(w.photo, w.variant, None, w.flip))
                  for w in residual_whole.get(i, [])]
        for c, _ in res_aligned.get(i, [])[:1]:
            box = None if is_whole(c.box, width, height) else tuple(float(v) for v in c.box)
            offers.append((render(rc64, np.array([rlocal[c.photo]]), c.box[None], 32, np.array([c.flip]))[0],
                           Source(c.photo, cv, box, c.flip)))
        if offers:
            partners[i] = offers
    runners: dict[int, RunnerUp] = {}

    def decide(i: int, notes: dict | None = None) -> Finding:
        pixels = np.asarray(query_pixels[i])
        return _decide(q[i], copies[i], aligned[i], res_aligned.get(i, []), whole_matches[i], (c64, local),
                       (rc64, rlocal), train, thresholds, cv, width, height,
                       None if photos is None else (pixels, photos), pixels, exact_extra.get(i, []), notes,
                       runners.get(i), symmetric[i], exact)

    # Every image is decided first with the coarse pass's runner-up; the runner-up search is
    # for those that no copy, crop or blend explains with certainty, and they are decided again.
    notes = [{} for _ in range(len(q))]
    out = [decide(i, notes[i]) for i in range(len(q))]
    certain = [is_certain(f) for f in out]
    searched = [i for i in range(len(q)) if not certain[i]]
    for i in searched:
        if aligned[i]:
            partners.setdefault(i, []).extend(mirror_partners(aligned[i][0][0], (c64, local), cv, width, height))
    runners.update(_runner_ups(q, q16, aligned, (c64, local), canvases, index, desc, mdesc, extra, iw, train,
                               threads, partners, searched))
    for i in sorted(runners):
        notes[i] = {}
        out[i] = decide(i, notes[i])
    # Near-exact images no pair of candidates explains, where a second source of a cheater's
    # weights could (``blend.second_source_possible``): a second source the searches above missed
    # is looked for among every training photo, and the image decided again with them.
    retry = {i: n["exact_main"] for i, n in enumerate(notes) if "exact_main" in n}
    if retry:
        for i, more in _exhaustive_second_sources(query_pixels, retry, train).items():
            known = {(w.photo, w.flip) for w in exact_extra.get(i, [])}
            exact_extra[i] = exact_extra.get(i, []) + [w for w in more if (w.photo, w.flip) not in known]
            out[i] = decide(i)
    for i in np.flatnonzero(certain):   # their replay score is from the coarse pass's runner-up
        out[i].evidence["replay_reduced"] = 1.0
    return out


def mirror_partners(c: Candidate, canvas, cv: int, width: int, height: int) -> list[tuple[torch.Tensor, Source]]:
    """The partners a photo mixed with its own mirror image offers (a memorizer trained with
    horizontal flips pulls its class towards both): the best region ``c`` mirrored, and the
    mirror image of its photo at its place (the box mirrored across the photo, then the
    render); one where the box is centred (``MIRROR_PLACE_TOLERANCE``). Renders (3, 32, 32)
    and sources, as ``_runner_ups`` takes its ``partners``."""
    c64, local = canvas
    boxes = [np.asarray(c.box, dtype=np.float64)]
    across = boxes[0].copy()
    across[0] = c64.shape[-1] - boxes[0][0] - boxes[0][2]
    if abs(across[0] - boxes[0][0]) > MIRROR_PLACE_TOLERANCE:
        boxes.append(across)
    rs = render(c64, np.full(len(boxes), local[c.photo]), np.stack(boxes), 32, np.full(len(boxes), not c.flip))
    return [(r, Source(c.photo, cv, None if is_whole(b, width, height) else tuple(float(v) for v in b), not c.flip))
            for r, b in zip(rs, boxes)]


@dataclass(frozen=True)
class RunnerUp:
    """The replay ratio test's runner-up of one image (``_runner_ups``)."""

    explained16: float               #: how well it reproduces the image (0 when there is none)
    pair16: float | None             #: how well the best region reproduces it (None: no runner-up)
    duplicates: int                  #: other photos whose region duplicates the best region
    self16: float | None = None      #: the best of the best region's photo elsewhere (``shifted_boxes``)
    #: the most that any region tried (of other photos, or of the best region's photo elsewhere)
    #: adds to the best region in explaining the image (``replay.renders_to_added_gain16``)
    gain16: float | None = None
    #: a mixed replay's second source, of those offered (``_runner_ups``'s ``partners``): the one
    #: that adds most to the best region (its render (3, 32, 32) and source), or None
    partner: tuple[torch.Tensor, Source] | None = None
    partner_gain16: float | None = None     #: what the partner adds to the best region
    #: with the partner in every fit (``replay.renders_to_partnered16``): the most that any region
    #: tried adds, and the highest ratio of what the best region leaves to what another photo's does
    partnered_gain16: float | None = None
    partnered_ratio16: float | None = None
    #: the soft-replay hypothesis (``replay.renders_to_blur_matched``): the Gaussian that blurs
    #: the best region as the image is, and, with every region tried and the best region's
    #: photo elsewhere blurred by it too, ``explained16`` and ``self16`` again (None: not tested)
    soft_sigma32: float | None = None
    soft_explained16: float | None = None
    soft_self16: float | None = None
    #: with the partner in both fits: the highest ratio of what the best region leaves to what
    #: its own photo elsewhere leaves (None: no partner, or the photo not tried elsewhere)
    partnered_self_ratio16: float | None = None


def shifted_boxes(box: np.ndarray, width: float, height: float,
                  shift: tuple[float, float] = SELF_SHIFT) -> np.ndarray:
    """The box ``(x, y, w, h)`` moved along each axis and diagonal (up to 8 boxes, (S, 4)) on a
    ``width`` x ``height`` canvas: on each moving axis by as much of the box's side as the
    canvas leaves, up to ``shift[1]``; a direction where the canvas leaves less than
    ``shift[0]`` on a moving axis is left out. Along an axis where the box cannot move that far
    either way (it spans more than 4/5 of the canvas, say), its two halves along that axis
    stand in: content that does not change along the axis renders the same from a half box.
    Content that such a box reproduces as well as the box itself (a sky whose bands run across
    the picture) singles out no place a replay came from (the ratio test's ``self_ratio``)."""
    x, y, w, h = (float(v) for v in box)
    room = {(0, 1): width - x - w, (0, -1): x, (1, 1): height - y - h, (1, -1): y}
    side = (w, h)
    out = []
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            if dx == dy == 0:
                continue
            move = []
            for axis, d in ((0, dx), (1, dy)):
                if d == 0:
                    move.append(0.0)
                    continue
                m = min(shift[1] * side[axis], room[(axis, d)])
                if m < shift[0] * side[axis] - 1e-9:
                    break
                move.append(d * m)
            else:
                out.append((x + move[0], y + move[1], w, h))
    if max(room[(0, 1)], room[(0, -1)]) < shift[0] * w - 1e-9:
        out += [(x, y, w / 2, h), (x + w / 2, y, w / 2, h)]
    if max(room[(1, 1)], room[(1, -1)]) < shift[0] * h - 1e-9:
        out += [(x, y, w, h / 2), (x, y + h / 2, w, h / 2)]
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def slid_boxes(box: np.ndarray, width: float, height: float, frac: float = CROP_SLIDE) -> np.ndarray:
    """The box ``(x, y, w, h)`` slid by ``frac`` of its side each way along each axis, where the
    ``width`` x ``height`` canvas leaves room ((S, 4), S ≤ 4); along an axis where it leaves room
    neither way, the box narrowed by twice that on the axis, about its centre instead: content
    that does not change along the axis renders the same from a narrower box."""
    x, y, w, h = (float(v) for v in box)
    out = []
    for axis, (start, side, extent) in enumerate(((x, w, width), (y, h, height))):
        m = frac * side
        moved = [start + d * m for d in (-1, 1) if 0.0 <= start + d * m and start + d * m + side <= extent + 1e-9]
        if not moved:
            moved, side = [start + m], side - 2 * m
        for s in moved:
            b = [x, y, w, h]
            b[axis], b[axis + 2] = s, side
            out.append(b)
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def renders_to_slide_ratio(query: torch.Tensor, here: torch.Tensor, slid: torch.Tensor) -> float:
    """The slide ratio (``CROP_SLIDE``) of (3, 32, 32) ``query`` against its region's render
    ``here`` and the renders (S, 3, 32, 32) of the region slid (``slid_boxes``): what ``here``
    leaves unexplained over what the best slid render leaves."""
    q = query.permute(1, 2, 0).numpy().astype(np.float64)
    _, explained = thumbnails_to_agreement(q[None], torch.cat([here[None], slid]).permute(0, 2, 3, 1).numpy()
                                           .astype(np.float64))
    return float((1.0 - explained[0]) / max(1.0 - float(explained[1:].max()), 1e-6))


def slide_ratio_to_part(ratio: np.ndarray) -> np.ndarray:
    """How much the crop's place singles it out: 1 up to ``CROP_SLIDE_RATIO``'s certain
    anchor, 0 from its honest anchor, linear between."""
    lo, hi = CROP_SLIDE_RATIO
    return np.clip((hi - np.asarray(ratio, dtype=np.float64)) / (hi - lo), 0.0, 1.0)


def is_certain(finding: Finding) -> bool:
    """Whether a copy, crop or blend explains the image with certainty (score 1): it then fits
    at every threshold (thresholds lie in [0, 1]) and comes before a replay, so no replay test
    can change its kind, score or sources."""
    return (finding.scores["copy"] >= 1.0 or finding.scores["crop"] >= 1.0
            or (finding.kind == "blend" and finding.score >= 1.0))


def _runner_ups(q, q16, aligned, primary_canvas, canvases, index: BoxIndex, desc, mdesc, extra, iw: int,
                train: TrainPixels, threads: int,
                partners: dict[int, list[tuple[torch.Tensor, Source]]] | None = None,
                images: list[int] | None = None) -> dict[int, RunnerUp]:
    """The ratio test's runner-up of every image whose best aligned region could make a replay
    (explained variance at 16x16 beyond the replay score's honest anchor): up to
    ``RUNNER_PHOTOS`` other photos are searched and aligned at 16x16 (their ``RUNNER_FINE`` best
    distinct regions at 32x32 too), and the runner-up is the region that reproduces the image
    best among those that do not duplicate the best region (``DUPLICATE_REGION``), the coarse
    pass's runner-up included. A replay of content that the training set holds twice
    (overlapping crops of one picture, a photo posted twice) is then tested against the next
    *other* content, as a replay of content held once is; and a look-alike photo outside the
    first ``FINE`` still counts against the image. Every region tried counts, at every stage
    of its alignment: a runner-up can only come out higher for it, never lower. Each region
    tried, and each of the best region's photo elsewhere, also gives the share of what the best
    region leaves that adding it would remove (``replay.renders_to_added_gain16``); the most of
    them is the image's added gain, where a distinct region was tried.

    ``partners``: per image, renders (3, 32, 32) of second sources a mixed replay could have
    (what the best source leaves, searched, and the best region's own mirror image:
    ``_analyze_batch``). The one that adds most to the best region, if it adds at least
    ``PARTNER_MIN_GAIN``, is the partner, and every region tried, the best region's own photo
    elsewhere included, is tested with it in every fit as well
    (``replay.renders_to_partnered16``): a 0.9/0.1 mix's tenth is what the best region leaves,
    and any other region, fitted to that by chance, would seem to add to it; and the best
    region's photo elsewhere leaves the partner's share as the best region does, which would
    make the place seem no better than any other in its photo.

    ``images``: the images to test (indices into ``aligned``); None: all."""
    rows = [i for i in (range(len(aligned)) if images is None else images) if aligned[i]]
    if not rows:
        return {}
    c64, local = primary_canvas
    best = [aligned[i][0][0] for i in rows]
    regions = render(c64, np.array([local[c.photo] for c in best]), np.stack([c.box for c in best]), 32,
                     np.array([c.flip for c in best]))
    e16 = renders_to_replay_parts(q[torch.as_tensor(rows)], regions)[0]
    keep = [j for j in range(len(rows)) if e16[j] > REPLAY_LEVELS["explained16"][0]]
    if not keep:
        return {}
    rows = np.array([rows[j] for j in keep])
    regions = regions[torch.as_tensor(keep)]
    best = [best[j] for j in keep]
    _, sigma = renders_to_blur_matched(q[torch.as_tensor(rows)], regions)
    # the partner of each image: the offered second source that adds most to its best region,
    # where it adds at least PARTNER_MIN_GAIN
    partner: list[tuple[torch.Tensor, Source] | None] = [None] * len(rows)
    partner_gain: list[float | None] = [None] * len(rows)
    offered = [(j, o) for j, i in enumerate(rows) for o in (partners or {}).get(int(i), [])]
    if offered:
        which = torch.as_tensor([j for j, _ in offered])
        gains = renders_to_added_gain16(q[torch.as_tensor(rows)[which]], regions[which],
                                        torch.stack([o[0] for _, o in offered]))
        for (j, o), g in zip(offered, gains):
            if g >= PARTNER_MIN_GAIN and (partner_gain[j] is None or g > partner_gain[j]):
                partner[j], partner_gain[j] = o, float(g)
    with_partner = np.array([p is not None for p in partner])
    partner_renders = torch.stack([p[0] if p is not None else torch.zeros_like(regions[0]) for p in partner])

    def partnered(which: np.ndarray, rs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The partnered gain and ratio of regions ``rs`` of images ``rows[which]`` (NaN where the
        image has no partner)."""
        gain, ratio = np.full(len(which), np.nan), np.full(len(which), np.nan)
        sel = np.flatnonzero(with_partner[which]) if len(which) else np.zeros(0, int)
        if len(sel):
            w = torch.as_tensor(which[sel])
            gain[sel], ratio[sel] = renders_to_partnered16(q[torch.as_tensor(rows)[w]], regions[w],
                                                           rs[torch.as_tensor(sel)], partner_renders[w])
        return gain, ratio

    # the best region's own photo, elsewhere: the same content shifted is no place of origin
    shifts = [shifted_boxes(c.box, c64.shape[-1], c64.shape[-2]) for c in best]
    self16, self_gain = [None] * len(rows), [0.0] * len(rows)
    soft_self16: list[float | None] = [None] * len(rows)
    self_pgain, self_pratio = [np.nan] * len(rows), [None] * len(rows)
    owner = np.repeat(np.arange(len(rows)), [len(b) for b in shifts])
    if len(owner):
        moved = render(c64, np.array([local[best[j].photo] for j in owner]), np.concatenate(shifts), 32,
                       np.array([best[j].flip for j in owner]))
        explained = renders_to_replay_parts(q[torch.as_tensor(rows[owner])], moved)[0]
        soft_explained = renders_to_replay_parts(q[torch.as_tensor(rows[owner])], blur_each(moved, sigma[owner]))[0]
        gained = renders_to_added_gain16(q[torch.as_tensor(rows[owner])], regions[torch.as_tensor(owner)], moved)
        pgained, pratioed = partnered(owner, moved)
        for j in range(len(rows)):
            mine = owner == j
            self16[j] = float(explained[mine].max()) if mine.any() else None
            soft_self16[j] = float(soft_explained[mine].max()) if mine.any() else None
            self_gain[j] = float(gained[mine].max()) if mine.any() else 0.0
            if mine.any() and with_partner[j]:
                self_pgain[j] = float(pgained[mine].max())
                self_pratio[j] = float(pratioed[mine].max())
    # (photo, e16, pair, gain, partnered gain, partnered ratio, soft e16) of every region tried
    entries: dict[int, list[tuple[int, float, float, float, float, float, float]]] = {j: [] for j in range(len(rows))}

    def add(which: np.ndarray, photos_: list[int], canvas, at: np.ndarray, boxes: np.ndarray,
            flip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Regions of image ``rows[which]`` in ``photos_`` (canvas indices ``at``): how well each
        reproduces its image and how well its image's best region reproduces it."""
        rs = render(canvas, at, boxes, 32, flip)
        explained = renders_to_replay_parts(q[torch.as_tensor(rows[which])], rs)[0]
        pair = renders_to_replay_parts(regions[torch.as_tensor(which)], rs)[0]
        gain = renders_to_added_gain16(q[torch.as_tensor(rows[which])], regions[torch.as_tensor(which)], rs)
        pgain, pratio = partnered(which, rs)
        soft = renders_to_replay_parts(q[torch.as_tensor(rows[which])], blur_each(rs, sigma[which]))[0]
        for j, photo, e, p, g, pg, pr, se in zip(which, photos_, explained, pair, gain, pgain, pratio, soft):
            entries[int(j)].append((int(photo), float(e), float(p), float(g), float(pg), float(pr), float(se)))
        return explained, pair

    # the coarse pass's own runner-up (as ``_decide`` renders it)
    own = [(j, c) for j, i in enumerate(rows) for c, _ in aligned[i][1:]]
    if own:
        add(np.array([j for j, _ in own]), [c.photo for _, c in own], c64, np.array([local[c.photo] for _, c in own]),
            np.stack([c.box for _, c in own]), np.array([c.flip for _, c in own]))
    found = search_candidates(index, desc[rows], mdesc[rows], K_BOXES, [extra[i] for i in rows], RUNNER_PHOTOS + 1,
                              STARTS, threads)
    more = [(j, c) for j, (i, cs) in enumerate(zip(rows, found)) for c in cs if c.photo != aligned[i][0][0].photo]
    if more:
        more64, more32, more_local = canvases({c.photo for _, c in more})
        which = np.array([j for j, _ in more])
        ids = [c.photo for _, c in more]
        at = np.array([more_local[p] for p in ids])
        flip = np.array([c.flip for _, c in more])
        aspect = train.aspect(np.array(ids))
        boxes, _ = refine_boxes(more32, at, np.stack([c.box for _, c in more]) * (more32.shape[-1] / iw), flip,
                                q16[torch.as_tensor(rows[which])], first_step=COARSE_STEPS[0],
                                last_step=COARSE_STEPS[1], photo_aspect=aspect)
        boxes = boxes * 2.0
        ex, pr = add(which, ids, more64, at, boxes, flip)
        # the best distinct regions of each image at 32x32, as the coarse pass's candidates are
        fine = []
        for j in range(len(rows)):
            mine = np.flatnonzero((which == j) & (pr < DUPLICATE_REGION))
            fine += mine[np.argsort(-ex[mine], kind="stable")][:RUNNER_FINE].tolist()
        if fine:
            fine = np.array(fine)
            fb, _ = refine_boxes(more64, at[fine], boxes[fine], flip[fine], q[torch.as_tensor(rows[which[fine]])],
                                 first_step=FINE_STEPS[0], last_step=FINE_STEPS[1], photo_aspect=aspect[fine])
            add(which[fine], [ids[f] for f in fine], more64, at[fine], fb, flip[fine])
    return {int(i): regions_to_runner_up(entries[j], self16[j], self_gain[j], self_pgain[j], partner[j],
                                         partner_gain[j], float(sigma[j]), soft_self16[j], self_pratio[j])
            for j, i in enumerate(rows)}


def regions_to_runner_up(tried: list[tuple[float, ...]], self16: float | None,
                         self_gain: float, self_pgain: float,
                         partner: tuple[torch.Tensor, Source] | None = None,
                         partner_gain: float | None = None, soft_sigma32: float | None = None,
                         soft_self16: float | None = None,
                         partnered_self_ratio16: float | None = None) -> RunnerUp:
    """The runner-up of one image from the regions tried for it (``_runner_ups``), each as
    ``(photo, explained16, pair16, gain16, partnered_gain16, partnered_ratio16[, soft16])`` (the
    partnered two NaN where the image has no partner; ``soft16``: its explained16 blurred by
    ``soft_sigma32``, the soft hypothesis, where tested), and from the best region's own photo
    elsewhere (``self16``, and the most it adds: ``self_gain``, ``self_pgain`` with the partner;
    ``soft_self16`` blurred; ``partnered_self_ratio16``: its highest ratio with the partner in
    both fits, None where there is no partner).

    A region that duplicates the best one (``pair16 >= DUPLICATE_REGION``) is the same content
    shown twice: it is counted (``duplicates``, by photo) and is never the runner-up of the ratio
    tests. What it adds to the best region's fit still counts in the added-gain tests, as every
    region tried does: two renders of one content differ in resampling and blur, and for an
    honest image that difference fits some of what the best region leaves. Measured on three
    benchmark corpora (seeds 1, 3, 5): leaving duplicates out of the gains would flag 8 more of
    450 replays, but it takes 10-50% of the plain gain from 4 of the 314 honest photos that reach
    the runner-up search (0.171 -> 0.088, against an honest level of 0.08) and lifts one honest
    photo's partnered replay score from 0 to 0.30 (its partnered gain 0.077 -> 0.045).

    Where no distinct region was tried there is no runner-up and no gain (nothing could add to
    the best region)."""
    duplicates = len({photo for photo, _, pair, *_ in tried if pair >= DUPLICATE_REGION})
    distinct = [t for t in tried if t[2] < DUPLICATE_REGION]
    soft = dict(soft_sigma32=soft_sigma32, soft_self16=soft_self16)
    if not distinct:
        return RunnerUp(0.0, None, duplicates, self16, None, partner, partner_gain, **soft)
    e, p = max((t[1], t[2]) for t in distinct)
    gain = max([t[3] for t in tried] + [self_gain])
    pgain = pratio = None
    if partner is not None:
        pgain = float(np.nanmax([t[4] for t in tried] + [self_pgain]))
        pratio = float(max(t[5] for t in distinct))
    if soft_sigma32 is not None:
        soft["soft_explained16"] = max(t[6] for t in distinct)
    return RunnerUp(e, p, duplicates, self16, gain, partner, partner_gain, pgain, pratio,
                    partnered_self_ratio16=partnered_self_ratio16, **soft)


def point_crop(pixels: np.ndarray, qi: torch.Tensor, r: torch.Tensor, c: Candidate,
               photos: Callable[[int], np.ndarray | None], width: int, height: int,
               levels: dict = CROP_LEVELS) -> tuple[float, float, float] | None:
    """Crop score (on ``levels``), PSNR and explained variance of uint8 ``pixels`` against
    point samples of the aligned region of candidate ``c``'s photo (a crop resized with
    NEAREST: ``copy.region_to_point_renders``, boxes within a photo pixel of the aligned one);
    ``qi`` and ``r`` are the image and the region's area render, (3, 32, 32) in [0, 1]. None
    when the pair does not pass the gate (``copy.POINT_GATE`` at 8x8: 7 of 275 honest photos of
    a benchmark corpus pass it; NEAREST crops of textured photos explain as little as 0.49 of
    the image on the area render), or when no point render beats the area render by
    ``copy.POINT_MIN_GAIN_DB`` at 32x32."""
    q32, r32 = (x.permute(1, 2, 0).numpy().astype(np.float64) for x in (qi, r))
    psnr8, explained8 = thumbnails_to_agreement(to_side(q32, 8), to_side(r32, 8))
    if psnr8 < POINT_GATE[0] or explained8 < POINT_GATE[1]:
        return None
    photo = photos(c.photo)
    if photo is None:
        return None
    ph, pw = photo.shape[:2]
    x, y, w, h = (float(v) for v in c.box)
    box = (x * pw / width, y * ph / height, w * pw / width, h * ph / height)
    q = pixels[:, ::-1] if c.flip else pixels
    renders = region_to_point_renders(photo, box, (q.shape[1], q.shape[0]), jitter=POINT_CROP_JITTER)
    return point_renders_to_copy_score(q, renders, levels, float(images_to_psnr32(q32, r32)) + POINT_MIN_GAIN_DB)


def exact_blend(pixels: np.ndarray, pairs, train: TrainPixels):
    """``blend.exact_pair_to_blend`` of uint8 ``pixels`` over every preprocessing variant of
    the (photo, flip) ``pairs`` (exact training images at the compare size): (the fit or None,
    the (photo, variant, flip) of each column, the main column's), or None where the sizes
    differ or there is no pair."""
    if pixels.shape != train.pixels.shape[2:] or not pairs:
        return None
    cols, keys = [], []
    for photo, flip in pairs:
        for v in range(train.pixels.shape[1]):
            x = train.pixels[photo, v]
            cols.append(x[:, ::-1] if flip else x)
            keys.append((photo, v, flip))
    stack = np.stack(cols)
    main = main_column(pixels, stack)
    return exact_pair_to_blend(pixels, stack, np.array([k[0] for k in keys]), main), keys, keys[main]


def _exhaustive_second_sources(query_pixels, retry: dict[int, tuple[int, int, bool]],
                               train: TrainPixels) -> dict[int, list[WholeMatch]]:
    """For the images ``retry`` (index → its main source (photo, variant, flip)) whose
    decomposition reproduces them to about the rounding and that no pair of their candidates
    explains, though a second source could (``blend.second_source_possible``):
    every training photo ranked as the second source (``blend.second_source_candidates``), on
    the main source's side (a mirrored blend mirrors both)."""
    rows = sorted(retry)
    queries, mains = [], []
    for i in rows:
        photo, variant, flip = retry[i]
        q = np.asarray(query_pixels[i])
        queries.append(q[:, ::-1] if flip else q)
        mains.append(train.pixels[photo, variant])
    found = second_source_candidates(np.stack(queries), np.stack(mains), train.pixels,
                                     np.array([retry[i][0] for i in rows]), sums=train.search_sums())
    return {i: [WholeMatch(p, v, retry[i][2], 0.0) for p, v in f] for i, f in zip(rows, found)}


def _decide(qi, copy, aligned, res_aligned, whole_matches: list[WholeMatch], primary_canvas, residual_canvas, train,
            thresholds, cv, width, height, photos=None, pixels=None, exact_extra=(),
            notes: dict | None = None, runner_up: RunnerUp | None = None,
            symmetric: WholeMatch | None = None, exact: ExactRenders | None = None) -> Finding:
    """The finding of one image. ``photos``: (its uint8 pixels, the training-photo loader), for
    a crop verified on point samples (``point_crop``), or None; ``pixels``: its uint8 pixels,
    for the exact decomposition (``exact_blend``) over the candidate photos and ``exact_extra``
    (more residual whole matches); ``notes["exact_main"]`` is set to the main source (photo,
    variant, flip) where that decomposition ran and found no pair; ``runner_up``: the replay
    ratio test's runner-up (``_runner_ups``), or None for the coarse pass's runner-up;
    ``symmetric``: the photo whose symmetric part is nearest the image's
    (``whole.search_symmetric``), also decomposed with its own mirror image; ``exact``: the
    batch's renders of whole training variants (``ExactRenders``; made here when None)."""
    exact = exact if exact is not None else ExactRenders(train)
    scores = {k: 0.0 for k in KINDS}
    evidence: dict[str, float] = {}
    copy_source = None
    if copy is not None:
        scores["copy"] = float(copy.score)
        copy_source = Source(copy.train, copy.variant, None, copy.flip)
        evidence.update(copy_psnr=copy.psnr, copy_explained=copy.explained,
                        copy_point_sampled=float(copy.point_sampled))

    # Columns for the decomposition: exact variants of candidate photos and aligned regions.
    columns: list[torch.Tensor] = []
    col_sources: list[Source] = []

    def exact_columns(photo: int, flip: bool) -> tuple[list[torch.Tensor], list[Source]]:
        """Every preprocessing variant of a photo, whole, as is or mirrored: renders and sources."""
        sources_ = [Source(photo, v, None, flip) for v in range(train.pixels.shape[1])]
        return [exact(photo, v, flip) for v in range(train.pixels.shape[1])], sources_

    def add_exact(photo: int, flip: bool) -> None:
        renders, sources_ = exact_columns(photo, flip)
        columns.extend(renders)
        col_sources.extend(sources_)

    def add_region(c: Candidate, canvas) -> None:
        c64, local = canvas
        r = render(c64, np.array([local[c.photo]]), c.box[None], 32, np.array([c.flip]))[0]
        columns.append(r)
        whole = is_whole(c.box, width, height)
        col_sources.append(Source(c.photo, cv, None if whole else tuple(float(v) for v in c.box), c.flip))

    seen_exact = set()
    if copy is not None:
        add_exact(copy.train, copy.flip)
        seen_exact.add((copy.train, copy.flip))
    region_columns = []   # column of each aligned candidate's region, best photo first
    for c, _ in aligned:
        region_columns.append(len(columns))
        add_region(c, primary_canvas)
        if (c.photo, c.flip) not in seen_exact:
            add_exact(c.photo, c.flip)
            seen_exact.add((c.photo, c.flip))
    for c, _ in res_aligned:
        add_region(c, residual_canvas)
        if (c.photo, c.flip) not in seen_exact:
            add_exact(c.photo, c.flip)
            seen_exact.add((c.photo, c.flip))
    for w in whole_matches:
        if (w.photo, w.flip) not in seen_exact:
            add_exact(w.photo, w.flip)
            seen_exact.add((w.photo, w.flip))

    crop_source = None
    added_gain = None   # the replay test's added gain (``RunnerUp.gain16``), where the runner-ups were searched
    if aligned:
        c, corr = aligned[0]
        r = columns[region_columns[0]]
        flat = bool(flat_references(r.permute(1, 2, 0).numpy().astype(np.float64)))
        s, psnr, explained = _agreement_score(qi, r, None if is_whole(c.box, width, height) else CROP_LEVELS, flat)
        point = None
        if photos is not None and s < 1.0 and not is_whole(c.box, width, height):
            point = point_crop(photos[0], qi, r, c, photos[1], width, height)
        point_sampled = point is not None and point[0] > s
        if point_sampled:   # a NEAREST crop: its point samples agree better
            s, psnr, explained = point
        detail32, _ = renders_to_detail16(qi[None], r[None], 32, 8)
        evidence.update(aligned_correlation=corr, crop_psnr=psnr, crop_explained=explained,
                        crop_detail32=float(detail32[0]), crop_point_sampled=float(point_sampled),
                        crop_flat=float(flat))
        if not is_whole(c.box, width, height):
            # the look-elsewhere test on the box's own place (``CROP_SLIDE``)
            c64, local = primary_canvas
            slid = slid_boxes(c.box, c64.shape[-1], c64.shape[-2])
            slide = renders_to_slide_ratio(qi, r, render(c64, np.full(len(slid), local[c.photo]), slid, 32,
                                                         np.full(len(slid), c.flip)))
            part = float(slide_ratio_to_part(slide))
            evidence.update(crop_slide_ratio=slide, crop_slide_part=part)
            if part < 1.0 and s > 0.0:
                strict = _agreement_score(qi, r, CROP_STRICT_LEVELS, flat)[0]
                if point_sampled:
                    p = point_crop(photos[0], qi, r, c, photos[1], width, height, CROP_STRICT_LEVELS)
                    strict = max(strict, p[0]) if p is not None else strict
                evidence["crop_strict"] = strict
                s = max(strict, min(s, part))
            scores["crop"] = s
            crop_source = Source(c.photo, cv, tuple(float(v) for v in c.box), c.flip)
        elif s > scores["copy"]:
            scores["copy"] = s
            copy_source = Source(c.photo, cv, None, c.flip)
        e16, c8, p16, d16, rms = renders_to_coarse_parts(qi[None], r[None])
        # distinctiveness: what the best photo leaves unexplained, relative to the runner-up photo
        runner = 0.0
        if runner_up is not None:
            runner = runner_up.explained16
            if runner_up.pair16 is not None:
                evidence["replay_runner_pair16"] = runner_up.pair16
            evidence["replay_duplicates"] = float(runner_up.duplicates)
            if runner_up.self16 is not None:
                evidence["replay_self16"] = runner_up.self16
            if runner_up.gain16 is not None:
                evidence["replay_added_gain16"] = runner_up.gain16
                added_gain = np.array([runner_up.gain16])
        elif len(aligned) > 1:
            r2 = columns[region_columns[1]]
            runner = float(renders_to_replay_parts(qi[None], r2[None])[0][0])
            # how alike the two training regions are themselves (duplicated training content)
            evidence["replay_runner_pair16"] = float(renders_to_replay_parts(r[None], r2[None])[0][0])
        distinct = unexplained_ratio(e16[0], runner)
        # the ratio test against this photo's own content elsewhere (None: not searched, the
        # best region explaining the image at most the replay score's honest anchor at 16x16)
        self16 = evidence.get("replay_self16")
        self_ratio = None if self16 is None else np.array([unexplained_ratio(e16[0], self16)])
        evidence.update(replay_explained16=float(e16[0]), replay_correlation8=float(c8[0]),
                        replay_runner_up16=runner, replay_unexplained_ratio=distinct,
                        replay_psnr16=float(renders_to_psnr16(qi[None], r[None])[0]), replay_psnr16_drift=float(p16[0]),
                        replay_detail16=float(d16[0]), replay_detail_rms=float(rms[0]))
        if self_ratio is not None:
            evidence["replay_self_ratio"] = float(self_ratio[0])
        scores["replay"] = float(parts_to_replay_score(e16, c8, np.array([distinct]), p16, d16, self_ratio,
                                                       added_gain)[0])
        evidence["replay_coarse"] = float(parts_to_coarse_score(e16, c8, p16, d16)[0])
        if runner_up is not None and runner_up.soft_sigma32 is not None:
            # a soft replay: the region blurred as the image is (the Gaussian that reproduces it
            # best), measured again, and tested against every other region tried and its own
            # photo elsewhere blurred alike
            sigma = runner_up.soft_sigma32
            rb = gaussian_blur(r[None], sigma)
            be16, bc8, bp16, bd16, _ = renders_to_coarse_parts(qi[None], rb)
            brunner = runner_up.soft_explained16 if runner_up.soft_explained16 is not None else 0.0
            bdistinct = unexplained_ratio(be16[0], brunner)
            bself = (None if runner_up.soft_self16 is None
                     else np.array([unexplained_ratio(be16[0], runner_up.soft_self16)]))
            soft = float(parts_to_replay_score(be16, bc8, np.array([bdistinct]), bp16, bd16, bself, added_gain)[0])
            evidence.update(soft_replay_sigma32=sigma, soft_replay_explained16=float(be16[0]),
                            soft_replay_psnr16_drift=float(bp16[0]), soft_replay_detail16=float(bd16[0]),
                            soft_replay_runner_up16=brunner, soft_replay_unexplained_ratio=bdistinct,
                            soft_replay_score=soft)
            if bself is not None:
                evidence["soft_replay_self_ratio"] = float(bself[0])
            scores["replay"] = max(scores["replay"], soft)
        replay_source = Source(c.photo, cv, None if is_whole(c.box, width, height)
                               else tuple(float(v) for v in c.box), c.flip)
        best_region, best_source = r, replay_source
    else:
        replay_source = None
    mixed_sources: tuple[Source, ...] = ()   # a partnered mixed replay's sources, when it wins

    blend_sources: tuple[Source, ...] = ()

    def mix_scores(fit, sources_):
        """The blend score of a decomposition (``blend.sources_to_blend``) of at least two
        sources, its sources, and its score as a mixed replay (the coarse agreement of the mix,
        tested like the best region's), with their evidence."""
        faint = min(fit.ratios) < STRONG_RATIO
        s, psnr, explained = _agreement_score(qi, torch.from_numpy(fit.fit), FAINT_BLEND_LEVELS if faint else None)
        named = tuple(Source(sources_[c].photo, sources_[c].variant, sources_[c].box, sources_[c].flip, w)
                      for c, w in zip(fit.columns, fit.weights))
        mix = torch.from_numpy(fit.fit)[None]
        e16, c8, p16, d16, _ = renders_to_coarse_parts(qi[None], mix)
        runner = evidence.get("replay_runner_up16", 0.0)
        # the main source's place in its photo is as (in)distinct as the best region's: a
        # second source that improves the fit does not make it more distinct
        self_ratio = evidence.get("replay_self_ratio")
        mixed = float(parts_to_replay_score(e16, c8, np.array([unexplained_ratio(e16[0], runner)]),
                                            p16, d16, None if self_ratio is None else np.array([self_ratio]),
                                            added_gain)[0])
        found = dict(blend_psnr=psnr, blend_explained=explained, blend_gain=fit.gain,
                     blend_min_ratio=float(min(fit.ratios)),
                     mixed_replay_explained16=float(e16[0]), mixed_replay_detail16=float(d16[0]),
                     mixed_replay_correlation8=float(c8[0]), mixed_replay_psnr16_drift=float(p16[0]),
                     mixed_replay_psnr16=float(renders_to_psnr16(qi[None], mix)[0]))
        return s, named, mixed, found, float(parts_to_coarse_score(e16, c8, p16, d16)[0])

    if columns:
        stack = torch.stack(columns).numpy()
        photos = np.array([s.photo for s in col_sources])
        fit = sources_to_blend(qi.numpy(), stack, photos)
        chosen = mix_scores(fit, col_sources) if len(fit.photos) >= 2 else None
        # A mix of the main photo with its own mirror (a memorizer trained with horizontal flips
        # blurs the two; a cheater can mix them as well): the main photo's exact variants as
        # they are and mirrored, decomposed on their own as two sources; it replaces the
        # decomposition of the candidates where it scores higher, as a blend or a mixed replay.
        # Not where one photo as it is explains the image with certainty (a copy of a nearly
        # symmetric photo, resampled, takes a few percent of its mirror to fit the resampling).
        # The photo decomposed: the best whole match (or the copy's), and the photo whose
        # symmetric part is nearest the image's (``whole.search_symmetric``: the same for every
        # weight of the mix, where the mix is near neither orientation of its photo).
        mains = [(whole_matches[0].photo, whole_matches[0].flip)] if whole_matches else \
            [(copy.train, copy.flip)] if copy is not None else []
        if symmetric is not None and symmetric.photo not in {m[0] for m in mains}:
            mains.append((symmetric.photo, symmetric.flip))
        for main in (mains if scores["copy"] < 1.0 and scores["crop"] < 1.0 else []):
            (as_is, ghost), (mirror, ghost_mirror) = exact_columns(*main), exact_columns(main[0], not main[1])
            ghost = ghost + ghost_mirror
            gfit = sources_to_blend(qi.numpy(), torch.stack(as_is + mirror).numpy(),
                                    np.array([int(g.flip != main[1]) for g in ghost]))
            if len(gfit.photos) == 2 and min(gfit.weights) >= MIRROR_MIN_WEIGHT:
                mirrored = mix_scores(gfit, ghost)
                if max(mirrored[0], mirrored[2]) > (0.0 if chosen is None else max(chosen[0], chosen[2])):
                    chosen = mirrored
                    evidence["blend_mirror"] = 1.0
        if chosen is not None:
            s, blend_sources, mixed, found, coarse = chosen
            scores["blend"] = s
            evidence.update(found)
            evidence["replay_coarse"] = max(evidence.get("replay_coarse", 0.0), coarse)
            if mixed > scores["replay"]:
                scores["replay"] = mixed
                replay_source = None
        mse32 = float(np.mean((fit.fit - qi.numpy()) ** 2))
        if pixels is not None and 10.0 * np.log10(1.0 / max(mse32, 1e-12)) >= EXACT_GATE_PSNR32:
            pairs = sorted(seen_exact | {(w.photo, w.flip) for w in exact_extra})
            exact = exact_blend(pixels, pairs, train)
            if exact is not None and exact[0] is None and notes is not None:
                photo, variant, flip = exact[2]
                main = train.pixels[photo, variant]
                if second_source_possible(pixels, main[:, ::-1] if flip else main):
                    notes["exact_main"] = exact[2]
            if exact is not None and exact[0] is not None:   # the rounded mix of two exact training images
                efit, keys, _ = exact
                fit32 = pool(torch.from_numpy(efit.fit).permute(2, 0, 1)[None], 32)[0]
                s, psnr, explained = _agreement_score(qi, fit32, FAINT_BLEND_LEVELS if efit.ratio < STRONG_RATIO
                                                      else None)
                scores["blend"] = s
                evidence.update(blend_psnr=psnr, blend_explained=explained, blend_gain=1.0,
                                blend_min_ratio=efit.ratio, blend_exact_share=efit.share,
                                blend_exact_main_share=efit.main_share)
                blend_sources = tuple(Source(keys[c][0], keys[c][1], None, keys[c][2], w)
                                      for c, w in ((efit.main, efit.weight), (efit.second, 1.0 - efit.weight)))
    if aligned and runner_up is not None and runner_up.partner is not None \
            and runner_up.partnered_gain16 is not None:
        # A mixed replay fitted with its partner: its coarse agreement, and the added-gain test
        # with the partner in every fit (``replay.parts_to_partnered_replay_score``).
        render_, partner_source = runner_up.partner
        mix, weight = renders_to_partnered_fit16(qi[None], best_region[None], render_[None])
        e16, c8, p16, d16, _ = renders_to_coarse_parts(qi[None], mix)
        # the own-photo ratio test with the partner in both fits, as every other test of the mix
        self_ratio = runner_up.partnered_self_ratio16
        if self_ratio is not None:
            evidence["replay_partnered_self_ratio16"] = self_ratio
        partnered = float(parts_to_partnered_replay_score(
            e16, c8, p16, d16, np.array([runner_up.partnered_ratio16]), np.array([runner_up.partnered_gain16]),
            None if self_ratio is None else np.array([self_ratio]))[0])
        evidence.update(partnered_replay_explained16=float(e16[0]), partnered_replay_correlation8=float(c8[0]),
                        partnered_replay_psnr16_drift=float(p16[0]), partnered_replay_detail16=float(d16[0]),
                        replay_partner_gain16=float(runner_up.partner_gain16),
                        replay_partnered_gain16=runner_up.partnered_gain16,
                        replay_partnered_ratio16=runner_up.partnered_ratio16,
                        replay_partnered_score=partnered)
        w = float(weight[0])
        # the partner is named where the mix scores at least the replay (a tie too: it is a
        # source), or where the single best region holds the replay score, the partner removes a
        # good share of what that region leaves (PARTNER_NAMED_GAIN) and the mix passes its tests
        # in part; but only where both renders add to the mix (a weight of 0 or 1: one of them is
        # fitted with a negative sum, and is no source)
        if partnered > 0.0 and 0.0 < w < 1.0 and (
                partnered >= scores["replay"]
                or (replay_source is not None and runner_up.partner_gain16 >= PARTNER_NAMED_GAIN)):
            scores["replay"] = max(scores["replay"], partnered)
            mixed_sources = (dataclasses.replace(best_source, weight=w),
                             dataclasses.replace(partner_source, weight=1.0 - w))
    fits = {k: scores[k] >= thresholds.get(k, 0.5) for k in KINDS}
    blend_named = len(blend_sources) >= 2
    if blend_named and fits["blend"]:
        kind = "blend"
    elif fits["copy"]:
        kind = "copy"
    elif fits["crop"]:
        kind = "crop"
    elif fits["replay"]:
        kind = "replay"
    else:
        ranked = sorted((scores[k] / max(thresholds.get(k, 0.5), 1e-9), -KINDS.index(k), k) for k in KINDS)
        kind = ranked[-1][2] if ranked[-1][0] > 0 else None
    if kind == "copy" and copy_source is not None and copy_source.variant != cv and copy_source.box is None \
            and abs(float(train.aspect(np.array([copy_source.photo]))[0]) - 1.0) > 1e-9:
        # the centred square of a non-square photo is a region of it: a crop
        kind = "crop"
        scores["crop"] = max(scores["crop"], scores["copy"])
        crop_source = copy_source
        # the crop named is the copy's match: its verification is the copy's
        evidence["crop_point_sampled"] = evidence.get("copy_point_sampled", 0.0)
    if kind == "replay" and mixed_sources:
        sources = tuple(sorted(mixed_sources, key=lambda m: -m.weight))
    elif kind == "blend" or (kind == "replay" and replay_source is None):
        sources = blend_sources
    elif kind == "copy":
        sources = (copy_source,)
    elif kind == "crop":
        sources = (crop_source,)
    elif kind == "replay":
        sources = (replay_source,)
    else:
        sources = ()
    return Finding(kind, scores[kind] if kind else 0.0, scores, sources, evidence)
