"""Synthetic anomalies in the style of DRAEM (Zavrtanik et al., ICCV 2021), without external textures.

`synthesize_anomalies(images, generator, probability)` pastes, into each image of a batch with the given
probability, a foreign texture through a Perlin-noise-shaped mask, and returns the new images and the masks.

For each image chosen:
1. Shape. 2D Perlin noise (gradient noise on a lattice of `2**a x 2**b` cells, a and b drawn independently, so
   the blobs range from one large region to many small ones at most 8 pixels across) is thresholded at 0.5
   (the noise spans about [-1, 1]), as DRAEM does. Where that leaves fewer than `MIN_AREA_FRACTION` of the
   pixels, the threshold drops to keep that many highest-noise pixels, so a chosen image is never left without
   an anomaly.
2. Texture. The source is ANOTHER image of the batch (a random derangement of the batch; with a batch of one,
   the image itself flipped both ways), seen through a random affine window (rotation by any angle, zoom to
   25-100% of the side, shift; reflection at the borders), with its 2x2 or 4x4 tiles shuffled with
   probability 0.5, and its colours changed (per-channel gain 0.5-1.5 and offset -0.25..0.25, inverted with
   probability 0.25), clamped to [0, 1].
3. Blend. Inside the mask, `out = (1 - opacity) * image + opacity * texture`, opacity uniform in [0.15, 1].
   The final mask keeps only the pixels where the blend is *visible*: where the local appearance around the
   pixel changed, i.e. the box-filtered mean colour (each channel) or the box-filtered mean absolute
   horizontal or vertical gradient (the texture's contrast and orientation) moved by more than
   `VISIBLE_CHANGE`, over a window of an eighth of the image side (`visible_change`; it must span a period
   of a regular texture for its statistics not to depend on the phase: the synthetic fabric's period is a
   sixteenth of the side, a 12-px perforation at 128 px is 0.09 of it). Two faults
   of plainer rules, both seen in the PNG grids: pasting plain background onto plain background changes
   nothing a model could see, and labelling it taught U-Net to flag plain background (synthetic screw and nut
   pixel AUROC below 0.5); and a faint paste of the same texture shifted in phase (a texture category's
   donors are the same texture) changes single pixels by more than the threshold on the weave's or the
   lattice's own edges, so a per-pixel test labelled a speckle tracing the normal texture that no eye can
   see as a defect. Local statistics see neither as a change. Pixels of the blob not labelled are put back:
   outside the final mask the image is returned bit for bit unchanged.

Images not chosen come back unchanged with an all-zero mask. A chosen image left without any visible change is
drawn again (up to `PASTE_ATTEMPTS` rounds, each drawing for the whole batch). Every random draw comes from
`generator` (drawn on its device), so the output is a function of the input and the generator's state.
DRAEM itself fills the mask with DTD textures (a download); this generator uses the batch instead.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PERLIN_THRESHOLD = 0.5
MIN_AREA_FRACTION = 0.005  # a chosen image gets at least this fraction of its pixels as anomaly
MAX_LATTICE_LOG2 = 5  # up to 32 lattice cells per side (DRAEM's scale range at 256 px)
MIN_CELL_PIXELS = 8  # and no lattice cell smaller than this
OPACITY_RANGE = (0.15, 1.0)
ZOOM_RANGE = (0.25, 1.0)
GAIN_RANGE = (0.5, 1.5)
OFFSET_RANGE = (-0.25, 0.25)
TILE_SHUFFLE_PROBABILITY = 0.5
INVERT_PROBABILITY = 0.25
PASTE_ATTEMPTS = 3  # draws per chosen image until one leaves a visible change
VISIBLE_CHANGE = 0.04  # a local statistic must move by more than this (about 10 of 255 levels)
VISIBILITY_WINDOW_FRACTION = 1 / 8  # the local window's side, as a fraction of the image side (17 px at 128)


def _local_statistics(images: torch.Tensor, window: int) -> torch.Tensor:
    """[B,5,H,W]: box means over `window` of each colour channel and of the grey image's |d/dx| and |d/dy|."""
    grey = images.mean(dim=1, keepdim=True)
    dx = F.pad((grey[..., :, 1:] - grey[..., :, :-1]).abs(), (0, 1, 0, 0), mode="replicate")
    dy = F.pad((grey[..., 1:, :] - grey[..., :-1, :]).abs(), (0, 0, 0, 1), mode="replicate")
    stats = torch.cat([images, dx, dy], dim=1)
    # Whole windows only (a window cut by the border would span less than a texture period); the pixels within
    # half a window of the border take the statistics of the nearest whole window.
    half = window // 2
    return F.pad(F.avg_pool2d(stats, window, stride=1), (half, half, half, half), mode="replicate")


def visible_change(images: torch.Tensor, blended: torch.Tensor) -> torch.Tensor:
    """bool [B,H,W]: where the local mean colour or the local gradient statistics of `blended` differ from
    those of `images` by more than VISIBLE_CHANGE (see the module docstring)."""
    side = min(images.shape[-2:])
    window = max(3, round(side * VISIBILITY_WINDOW_FRACTION)) | 1  # odd, so the window is centred
    change = (_local_statistics(blended.float(), window) - _local_statistics(images.float(), window)).abs()
    return change.amax(dim=1) > VISIBLE_CHANGE


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, device=generator.device)


def _fade(t: torch.Tensor) -> torch.Tensor:
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin_noise(height: int, width: int, cells_y: int, cells_x: int, generator: torch.Generator) -> torch.Tensor:
    """2D Perlin noise [height, width] on a lattice of cells_y x cells_x cells, values in about [-1, 1]."""
    device = generator.device
    angles = 2 * math.pi * torch.rand(cells_y + 1, cells_x + 1, generator=generator, device=device)
    gradients = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)  # [cy+1, cx+1, 2]
    y = torch.arange(height, device=device, dtype=torch.float32) * cells_y / height
    x = torch.arange(width, device=device, dtype=torch.float32) * cells_x / width
    iy, ix = y.floor().long(), x.floor().long()
    fy, fx = (y - iy)[:, None], (x - ix)[None, :]  # [H,1], [1,W]

    def corner(dy: int, dx: int) -> torch.Tensor:
        g = gradients[iy + dy][:, ix + dx]  # [H, W, 2]
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    wy, wx = _fade(fy), _fade(fx)
    top = torch.lerp(corner(0, 0), corner(0, 1), wx)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), wx)
    return math.sqrt(2) * torch.lerp(top, bottom, wy)


def perlin_mask(height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """A binary (bool) [height, width] blob mask: thresholded Perlin noise of a random lattice scale."""
    max_log2_y = max(0, min(MAX_LATTICE_LOG2, int(math.log2(max(1, height // MIN_CELL_PIXELS)))))
    max_log2_x = max(0, min(MAX_LATTICE_LOG2, int(math.log2(max(1, width // MIN_CELL_PIXELS)))))
    log2_y = int(torch.randint(0, max_log2_y + 1, (1,), generator=generator, device=generator.device))
    log2_x = int(torch.randint(0, max_log2_x + 1, (1,), generator=generator, device=generator.device))
    noise = perlin_noise(height, width, 2**log2_y, 2**log2_x, generator)
    min_pixels = max(1, math.ceil(MIN_AREA_FRACTION * height * width))
    kth_highest = torch.topk(noise.flatten(), min_pixels).values[-1]
    return noise >= torch.minimum(kth_highest, torch.tensor(PERLIN_THRESHOLD, device=noise.device))


def _donor_indices(batch: int, generator: torch.Generator) -> torch.Tensor:
    """A random derangement: image i takes its texture from donors[i] != i (batch >= 2)."""
    order = torch.randperm(batch, generator=generator, device=generator.device)
    shift = int(torch.randint(1, batch, (1,), generator=generator, device=generator.device))
    donors = torch.empty_like(order)
    donors[order] = order.roll(-shift)
    return donors


def _affine_window(sources: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each source seen through a random rotated, zoomed and shifted window, reflected at the borders."""
    batch = sources.shape[0]
    angle = _uniform(batch, -math.pi, math.pi, generator)
    zoom = _uniform(batch, *ZOOM_RANGE, generator)
    shift = (_uniform(2 * batch, -1.0, 1.0, generator).view(batch, 2)) * (1 - zoom)[:, None]
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    theta = theta.to(sources.device, sources.dtype)
    grid = F.affine_grid(theta, list(sources.shape), align_corners=False)
    return F.grid_sample(sources, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _shuffle_tiles(texture: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[3,H,W]: cut into a 2x2 or 4x4 grid of tiles and put them back in random order (when the sides divide)."""
    _, height, width = texture.shape
    tiles_per_side = 2 ** int(torch.randint(1, 3, (1,), generator=generator, device=generator.device))
    order = torch.randperm(tiles_per_side**2, generator=generator, device=generator.device)
    if height % tiles_per_side or width % tiles_per_side:
        return texture
    th, tw = height // tiles_per_side, width // tiles_per_side
    tiles = texture.reshape(3, tiles_per_side, th, tiles_per_side, tw).permute(1, 3, 0, 2, 4).reshape(-1, 3, th, tw)
    tiles = tiles[order.to(texture.device)]
    return tiles.reshape(tiles_per_side, tiles_per_side, 3, th, tw).permute(2, 0, 3, 1, 4).reshape(3, height, width)


def _paste(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw of steps 1-3 for every image of the batch: (blended images, bool masks of the visible change)."""
    batch, _, height, width = images.shape
    device = images.device
    if batch > 1:
        sources = images[_donor_indices(batch, generator).to(device)]
    else:
        sources = images.flip(-1, -2)
    textures = _affine_window(sources.float(), generator)

    shuffle = torch.rand(batch, generator=generator, device=generator.device) < TILE_SHUFFLE_PROBABILITY
    gains = _uniform(3 * batch, *GAIN_RANGE, generator).view(batch, 3, 1, 1).to(device)
    offsets = _uniform(3 * batch, *OFFSET_RANGE, generator).view(batch, 3, 1, 1).to(device)
    invert = (torch.rand(batch, generator=generator, device=generator.device) < INVERT_PROBABILITY).to(device)
    opacity = _uniform(batch, *OPACITY_RANGE, generator).view(batch, 1, 1, 1).to(device)

    shuffled = []
    for i in range(batch):
        tiles_shuffled = _shuffle_tiles(textures[i], generator)  # drawn for every image: a fixed draw order
        shuffled.append(tiles_shuffled if bool(shuffle[i]) else textures[i])
    textures = torch.stack(shuffled)
    textures = textures * gains + offsets
    textures = torch.where(invert.view(batch, 1, 1, 1), 1 - textures, textures).clamp(0, 1)

    masks = torch.stack([perlin_mask(height, width, generator) for _ in range(batch)]).to(device)
    blended = ((1 - opacity) * images.float() + opacity * textures).to(images.dtype)
    # Only a visible change is an anomaly (module docstring, step 3); the rest of the blob is put back.
    masks = masks & visible_change(images, torch.where(masks[:, None], blended, images))
    return torch.where(masks[:, None], blended, images), masks


def synthesize_anomalies(
    images: torch.Tensor, generator: torch.Generator, probability: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    """images [B,3,H,W] in [0,1] -> (images with pasted anomalies [B,3,H,W], masks [B,H,W] float in {0,1}).

    A chosen image whose paste left no visible change (12-19% of them on the synthetic textures, measured)
    gets another draw, up to PASTE_ATTEMPTS in all, so that `probability` stays the share of images that
    carry an anomaly."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images [B,3,H,W], got {tuple(images.shape)}")
    batch = images.shape[0]
    chosen = torch.rand(batch, generator=generator, device=generator.device) < probability
    pending = chosen.to(images.device)
    images_out, masks = images.clone(), torch.zeros(images.shape[:1] + images.shape[2:], dtype=torch.bool,
                                                      device=images.device)
    for _ in range(PASTE_ATTEMPTS):
        if not bool(pending.any()):
            break
        pasted, visible = _paste(images, generator)  # drawn for the whole batch: a fixed draw order per round
        take = pending & visible.flatten(1).any(dim=1)
        images_out[take], masks[take] = pasted[take], visible[take]
        pending = pending & ~take
    return images_out, masks.to(images.dtype if images.is_floating_point() else torch.float32)
