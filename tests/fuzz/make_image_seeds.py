#!/usr/bin/python3
"""Writes the image fuzzing seeds (tests/fuzz/corpus/image/) and the hostile-input image
fixtures (tests/fixtures/hostile/): small real files in every variant the decoder claims
to read, made from scikit-image's sample photos with Pillow (Debian: python3-skimage,
python3-pil), ImageMagick (BMP RLE, Adam7 PNG) and jpegtran (JPEG restart markers).
Deterministic: same packages, same bytes.

Run from the repository root:  /usr/bin/python3 tests/fuzz/make_image_seeds.py
"""
import io
import os
import shutil
import struct
import subprocess
import zlib

from PIL import Image

SK = '/usr/lib/python3/dist-packages/skimage/data'
CORPUS = 'tests/fuzz/corpus/image'
HOSTILE = 'tests/fixtures/hostile'


def photo(name, size):
    im = Image.open(os.path.join(SK, name))
    im.load()
    out = im.convert('RGB').resize(size, Image.BILINEAR)
    out.info.pop('icc_profile', None)  # keep the seeds small: pixels, not colour profiles
    return out


def save(im, path, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    write(path, buf.getvalue())


def write(path, data):
    with open(path, 'wb') as f:
        f.write(data)


def png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)


def png_raw(w, h, depth, color, rows, extra=b''):
    """A PNG from already filtered scanlines (filter byte 0 + packed samples)."""
    ihdr = struct.pack('>IIBBBBB', w, h, depth, color, 0, 0, 0)
    return (b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', ihdr) + extra +
            png_chunk(b'IDAT', zlib.compress(rows, 9)) + png_chunk(b'IEND', b''))


def main():
    os.makedirs(CORPUS, exist_ok=True)
    os.makedirs(HOSTILE, exist_ok=True)
    cat = photo('chelsea.png', (32, 21))
    coffee = photo('coffee.png', (24, 16))
    c = lambda n: os.path.join(CORPUS, n)
    h = lambda n: os.path.join(HOSTILE, n)

    # --- JPEG: baseline 4:2:0 / 4:4:4, progressive, grey, CMYK (Adobe), restart markers
    save(cat, c('baseline_420.jpg'), 'JPEG', quality=75, subsampling=2)
    save(cat, c('baseline_444.jpg'), 'JPEG', quality=90, subsampling=0)
    save(cat, c('progressive.jpg'), 'JPEG', quality=75, progressive=True)
    save(cat.convert('L'), c('grey.jpg'), 'JPEG', quality=75)
    save(coffee.convert('CMYK'), c('cmyk_adobe.jpg'), 'JPEG', quality=75)
    # optimised Huffman tables; restart markers (jpegtran) exercise the RSTn paths
    save(coffee, c('optimized.jpg'), 'JPEG', quality=70, optimize=True)
    with open(c('restart.jpg'), 'wb') as out:  # jpegtran: Debian libjpeg-turbo-progs
        subprocess.run(['jpegtran', '-restart', '1B', c('optimized.jpg')], stdout=out, check=True)
    # a real truncated JPEG from scikit-image
    shutil.copy(os.path.join(SK, 'truncated.jpg'), c('skimage_truncated.jpg'))

    # --- PNG: RGB, grey, grey+alpha, RGBA, palette (+tRNS), 16-bit, interlaced, 1/2/4-bit
    save(cat, c('rgb.png'), 'PNG')
    save(cat.convert('L'), c('grey.png'), 'PNG')
    save(cat.convert('LA'), c('grey_alpha.png'), 'PNG')
    rgba = cat.convert('RGBA')
    rgba.putalpha(Image.linear_gradient('L').resize(cat.size))
    save(rgba, c('rgba.png'), 'PNG')
    pal = cat.convert('P', palette=Image.ADAPTIVE, colors=16)
    save(pal, c('palette.png'), 'PNG')
    save(pal, c('palette_trns.png'), 'PNG', transparency=3)
    # Pillow does not write Adam7; ImageMagick does
    subprocess.run(['convert', c('rgb.png'), '-strip', '-define', 'png:exclude-chunk=date,time', '-interlace', 'PNG',
                    c('interlaced.png')], check=True)
    save(cat.convert('1'), c('bilevel.png'), 'PNG')
    # 16-bit RGB with alpha and 16-bit grey, written by hand (Pillow writes 16-bit grey only)
    w, hgt = 12, 8
    px = cat.resize((w, hgt)).load()
    rows16 = b''.join(b'\0' + b''.join(struct.pack('>HHHH', px[x, y][0] * 257, px[x, y][1] * 257,
                                                     px[x, y][2] * 257, (x * 65535) // (w - 1))
                                       for x in range(w)) for y in range(hgt))
    write(c('rgba16.png'), png_raw(w, hgt, 16, 6, rows16))
    write(h('rgba16.png'), png_raw(w, hgt, 16, 6, rows16))
    rows8 = b''.join(b'\0' + b''.join(bytes(px[x, y]) for x in range(w)) for y in range(hgt))
    write(h('rgba16_as8.png'), png_raw(w, hgt, 8, 2, rows8))  # the same pixels, 8-bit RGB
    write(c('grey16.png'), png_raw(w, hgt, 16, 0, b''.join(
        b'\0' + b''.join(struct.pack('>H', px[x, y][1] * 257) for x in range(w)) for y in range(hgt))))
    # 4-bit palette with a tRNS alpha table: paletted PNG with alpha
    palette = bytes(v for i in range(16) for v in (i * 17, 255 - i * 17, (i * 53) % 256))
    trns = bytes(255 - i * 16 for i in range(16))
    rows4 = b''.join(b'\0' + bytes(((2 * x + y) % 16) << 4 | ((2 * x + 1 + y) % 16) for x in range(6))
                     for y in range(8))
    p4 = png_raw(12, 8, 4, 3, rows4, png_chunk(b'PLTE', palette) + png_chunk(b'tRNS', trns))
    write(c('palette4_trns.png'), p4)
    write(h('palette4_alpha.png'), p4)

    # --- GIF: still, animated (first frame differs from the second), interlaced
    save(pal, c('still.gif'), 'GIF')
    f1 = Image.new('RGB', (8, 6), (255, 0, 0))
    f2 = Image.new('RGB', (8, 6), (0, 0, 255))
    f3 = Image.new('RGB', (8, 6), (0, 255, 0))
    buf = io.BytesIO()
    f1.save(buf, 'GIF', save_all=True, append_images=[f2, f3], duration=100, loop=0)
    write(c('animated.gif'), buf.getvalue())
    write(h('animated.gif'), buf.getvalue())
    save(pal, c('interlaced.gif'), 'GIF', interlace=True)
    shutil.copy(os.path.join(SK, 'no_time_for_that_tiny.gif'), c('skimage_tiny_animated.gif'))

    # --- BMP: 24-bit, 8-bit palette, 1-bit, 32-bit (ImageMagick: BITFIELDS/alpha), RLE8, top-down
    save(cat, c('rgb24.bmp'), 'BMP')
    save(pal, c('palette8.bmp'), 'BMP')
    save(cat.convert('1'), c('bilevel.bmp'), 'BMP')
    small = c('rgb24.bmp')
    subprocess.run(['convert', small, '-alpha', 'set', '-define', 'bmp:format=bmp4', c('rgba32.bmp')], check=True)
    subprocess.run(['convert', small, '-colors', '16', '-type', 'Palette', '-compress', 'RLE',
                    'BMP3:' + c('rle8.bmp')], check=True)
    # top-down rows: negative height in the header
    data = bytearray(open(small, 'rb').read())
    hh = struct.unpack_from('<i', data, 22)[0]
    struct.pack_into('<i', data, 22, -hh)
    write(c('topdown.bmp'), bytes(data))

    # --- 1x1 images in each format (hostile fixtures too)
    one = Image.new('RGB', (1, 1), (200, 100, 50))
    for fmt, ext in (('PNG', 'png'), ('JPEG', 'jpg'), ('GIF', 'gif'), ('BMP', 'bmp')):
        save(one, c('1x1.' + ext), fmt, **({'quality': 95} if fmt == 'JPEG' else {}))
        save(one, h('1x1.' + ext), fmt, **({'quality': 95} if fmt == 'JPEG' else {}))
    hostile_fixtures(cat)


def hostile_fixtures(cat):
    """Files that are not (whole) images, for tests/c/test_hostile.c and tests/hostile.test.mjs."""
    h = lambda n: os.path.join(HOSTILE, n)
    write(h('empty.jpg'), b'')
    buf = io.BytesIO()
    cat.save(buf, 'JPEG', quality=80, progressive=True)
    write(h('truncated.jpg'), buf.getvalue()[:len(buf.getvalue()) // 2])
    buf = io.BytesIO()
    cat.save(buf, 'PNG')
    write(h('truncated.png'), buf.getvalue()[:len(buf.getvalue()) // 2])
    # a well-formed PNG (CRCs right) whose IHDR declares 100000 x 100000: 30 GB of pixels
    write(h('huge_100000x100000.png'), png_raw(100000, 100000, 8, 2, b'\0\0\0\0'))
    # a 1x1 PNG whose IDAT inflates to 16 MB (a decompression bomb in 16 KB)
    write(h('bomb_1x1_16mb.png'), png_raw(1, 1, 8, 2, b'\0' * (16 << 20)))
    write(h('drawing_svg.jpg'), b'<?xml version="1.0" encoding="UTF-8"?>\n'
          b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
          b'<circle cx="32" cy="32" r="30" fill="orange"/></svg>\n')
    write(h('notes_txt.jpg'), b'Shopping list:\n- cat food\n- coffee\n')
    write(h('document_pdf.jpg'), b'%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n'
          b'2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n')


if __name__ == '__main__':
    main()
