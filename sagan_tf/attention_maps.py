"""Where each query location attends: attention rows as maps over the image, drawn as in the paper.

A `SelfAttention` layer on an H x W feature map returns the map [B, H*W, N_key]: row j is the softmax
over key locations for query j (keys max-pooled by `pool_size` p in the "official" style, so
N_key = (H/p) * (W/p)). `query_maps` picks the rows of chosen query points, given as fractions of the
image, and reshapes them to [H/p, W/p]; `attention_figure` overlays them on the images.
"""

import numpy as np

from sagan_tf import images as images_lib


def default_queries(count):
    """`count` query points (y, x) in [0, 1)^2 spread over the image (a centred grid, row by row)."""
    side = int(np.ceil(np.sqrt(count)))
    centres = (np.arange(side) + 0.5) / side
    points = [(y, x) for y in centres for x in centres]
    return points[:count]


def query_index(point, height, width):
    """The flat index (row-major) of the feature location containing `point` = (y, x) in [0, 1)."""
    y, x = point
    if not (0.0 <= y < 1.0 and 0.0 <= x < 1.0):
        raise ValueError(f"Query points are fractions of the image in [0, 1). Received {point}.")
    return int(y * height) * width + int(x * width)


def query_maps(attention, height, width, points):
    """Rows of `attention` [B, H*W, N_key] for `points` -> [B, Q, h_key, w_key] (each sums to 1).

    The key grid is square-pooled from the H x W query grid: h_key = H / p, w_key = W / p.
    """
    attention = np.asarray(attention)
    batch, queries, keys = attention.shape
    if queries != height * width:
        raise ValueError(f"An attention map with {queries} queries does not come from a {height}x{width} layer.")
    pool = int(round(np.sqrt(queries / keys)))
    if pool < 1 or (height // pool) * (width // pool) != keys:
        raise ValueError(f"{keys} keys do not tile a {height}x{width} layer with square pooling.")
    rows = [attention[:, query_index(p, height, width)] for p in points]
    return np.stack(rows, axis=1).reshape(batch, len(points), height // pool, width // pool)


def _upsample(heat, size):
    """Nearest-neighbour [h, w] -> [size, size] (every key cell covers a block of pixels)."""
    h, w = heat.shape
    rows = (np.arange(size) * h // size)
    cols = (np.arange(size) * w // size)
    return heat[rows][:, cols]


def _draw_dot(image, point, colour=(0, 255, 0)):
    size = image.shape[0]
    y, x = int(point[0] * size), int(point[1] * size)
    radius = max(1, size // 32)
    image[max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1] = colour
    return image


def overlay(image, heat, point):
    """uint8 image [R, R, 3] darkened, with `heat` [h, w] (scaled to its max) in red and the query dot."""
    heat = _upsample(np.asarray(heat, np.float64), image.shape[0])
    heat = heat / max(heat.max(), 1e-12)
    base = image.astype(np.float64) * 0.35
    red = np.stack([255.0 * heat, 40.0 * heat, 40.0 * heat], axis=-1)
    out = np.clip(base + red * 0.9, 0, 255).astype(np.uint8)
    return _draw_dot(out, point)


def attention_figure(images, maps, points, layer_sizes=None, scale=1):
    """The paper-style figure as one uint8 image.

    Args:
        images: float [B, R, R, C] in [-1, 1].
        maps: {layer name: attention [B, H*W, N_key]}.
        points: Q query points (y, x) in [0, 1).
        layer_sizes: {layer name: (H, W)} of the layer's feature map; default: square, H = W = sqrt(H*W).
        scale: integer upscaling of every panel (small images are hard to read).

    Returns:
        uint8 [B * R', (1 + L * Q) * R', 3] with R' = R * scale: per row, the image with all query dots,
        then for each layer and query, the map over the darkened image with that query's dot.
    """
    pictures = images_lib.to_uint8(images, rgb=True).numpy()
    rows = []
    for b, picture in enumerate(pictures):
        panels = [picture.copy()]
        for point in points:
            _draw_dot(panels[0], point)
        for name in sorted(maps):
            side = int(round(np.sqrt(np.asarray(maps[name]).shape[1])))
            height, width = (layer_sizes or {}).get(name, (side, side))
            heats = query_maps(np.asarray(maps[name])[b:b + 1], height, width, points)[0]
            panels += [overlay(picture, heat, point) for heat, point in zip(heats, points)]
        row = np.concatenate(panels, axis=1)
        rows.append(np.kron(row, np.ones((scale, scale, 1), np.uint8)) if scale > 1 else row)
    return np.concatenate(rows, axis=0)


def annotate_figure(figure, title, points, layers, panel):
    """`attention_figure`'s image with a title, a header over every panel column, the query points
    numbered in each row's first panel, and a legend with the colour scale and the query coordinates.

    Args:
        figure: uint8 [rows * panel, (1 + L * Q) * panel, 3] from `attention_figure`.
        title: e.g. "generator, step 1500".
        points: the Q query points (y, x) in [0, 1).
        layers: {layer name: (H, W)} of the L layers, in the figure's (sorted) order.
        panel: the size of one panel in pixels (R * scale).
    """
    from PIL import Image, ImageDraw, ImageFont  # noqa: PLC0415

    font = ImageFont.load_default()
    names = sorted(layers)
    header, footer = 34, 46
    canvas = Image.new("RGB", (figure.shape[1], figure.shape[0] + header + footer), "white")
    canvas.paste(Image.fromarray(figure), (0, header))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill="black", font=font)
    columns = ["queries"] + [f"{name} {layers[name][0]}x{layers[name][1]}: q{k + 1}" for name in names
                             for k in range(len(points))]
    for i, text in enumerate(columns):
        draw.text((i * panel + 3, 18), text, fill="black", font=font)
    for row in range(figure.shape[0] // panel):
        for k, (y, x) in enumerate(points):  # the query's number on a dark tag beside its dot
            left, top = x * panel + 5, header + row * panel + y * panel - 14
            draw.rectangle([left - 1, top, left + 7, top + 11], fill="black")
            draw.text((left, top), str(k + 1), fill=(0, 255, 0), font=font)
    top = header + figure.shape[0] + 4
    bar = 120
    for i in range(bar):  # the overlay's colour map: black (weight 0) to red (the map's largest weight)
        heat = i / (bar - 1)
        draw.line([(4 + i, top), (4 + i, top + 10)], fill=(int(255 * heat * 0.9), int(40 * heat * 0.9), int(40 * heat * 0.9)))
    draw.text((4, top + 13), "0", fill="black", font=font)
    draw.text((4 + bar - 20, top + 13), "max", fill="black", font=font)
    draw.text((bar + 14, top), "red: attention weight of query k (each map scaled to its maximum)", fill="black", font=font)
    draw.text((bar + 14, top + 14), "green: query points, (y, x) as fractions of the image:", fill="black", font=font)
    draw.text((bar + 14, top + 28), ", ".join(f"{k + 1} ({y:.2f}, {x:.2f})" for k, (y, x) in enumerate(points)),
              fill="black", font=font)
    return np.asarray(canvas)
