"""Norpix .seq movies (the Caltech Pedestrian format): a 1024-byte header, then JPEG frames.

Each frame is a uint32 size (counting its own 4 bytes), the JPEG bytes, then
a timestamp and padding whose length differs between writers; the next
frame is found by probing a few offsets for a size followed by a JPEG start
marker. Only offsets are read when a file is indexed; frames are decoded on
demand.
"""
import struct
from pathlib import Path
from typing import List, Tuple

from stbench import UserError

MAGIC = 0xFEED
JPEG_FORMATS = (102, 201)  # colour / grey JPEG; Caltech's files are 102
SOI = b"\xff\xd8"
GAPS = (8, 16, 0, 4, 12, 6, 10, 14, 20, 24, 32)  # bytes between frames, most common first
PAST_END = "past the end of the file"
HINT = "download the Caltech Pedestrian .seq files again (data_and_labels.zip from data.caltech.edu)"


class SeqFile:
    """Header fields and the (offset, length) of every JPEG frame of one .seq file."""

    def __init__(self, path):
        self.path = Path(path)
        try:
            with open(self.path, "rb") as handle:
                header = handle.read(1024)
                self._parse_header(header)
                self.frames = self._index(handle)
        except OSError as error:
            raise UserError(f"cannot read {self.path} ({error}); {HINT}") from None

    def _parse_header(self, header: bytes):
        if len(header) < 1024 or struct.unpack_from("<I", header, 0)[0] != MAGIC:
            raise UserError(f"{self.path} is not a Norpix .seq file (bad header); {HINT}")
        self.header_size = struct.unpack_from("<i", header, 32)[0] or 1024
        (self.width, self.height, _bit_depth, _real_depth, _image_bytes, self.image_format, self.allocated,
         _origin, _true_size) = struct.unpack_from("<9I", header, 548)
        self.fps = struct.unpack_from("<d", header, 584)[0]
        if self.image_format not in JPEG_FORMATS:
            raise UserError(f"{self.path}: image format {self.image_format} is not JPEG (102 / 201), the only "
                            f"encoding Caltech Pedestrian uses; {HINT}")

    def _probe(self, handle, offset: int, file_size: int):
        """The size of the frame at ``offset``; PAST_END when it would end beyond the file; None if no frame."""
        if offset + 6 > file_size:
            return PAST_END
        handle.seek(offset)
        head = handle.read(6)
        size = struct.unpack_from("<I", head, 0)[0]
        if head[4:6] != SOI or size < 6:
            return None
        return PAST_END if offset + size > file_size else size

    def _index(self, handle) -> List[Tuple[int, int]]:
        handle.seek(0, 2)
        file_size = handle.tell()
        frames, offset, gap = [], max(1024, self.header_size), GAPS[0]
        for number in range(self.allocated):
            size = self._probe(handle, offset, file_size)
            if size is PAST_END:
                raise UserError(f"{self.path} is truncated: the header announces {self.allocated} frames, "
                                f"the file ends within frame {number}; {HINT}")
            if size is None:
                raise UserError(f"{self.path}: frame {number} at byte {offset} is not a JPEG frame (corrupt file); "
                                f"{HINT}")
            frames.append((offset + 4, size - 4))
            if number + 1 == self.allocated:
                break
            end = offset + size
            offset = end + gap  # when no gap fits, the next round reports what is there
            for candidate in (gap,) + tuple(g for g in GAPS if g != gap):
                if isinstance(self._probe(handle, end + candidate, file_size), int):
                    offset, gap = end + candidate, candidate
                    break
        return frames

    def __len__(self):
        return len(self.frames)

    def jpeg(self, index: int) -> bytes:
        offset, length = self.frames[index]
        try:
            with open(self.path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(length)
        except OSError as error:
            raise UserError(f"cannot read {self.path} ({error}); {HINT}") from None
        if len(data) != length:
            raise UserError(f"{self.path} is truncated at frame {index}; {HINT}")
        return data
