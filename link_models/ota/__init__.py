"""The over-the-air burst frame: Schmidl-Cox preamble, coded header, Sionna OFDM payload, burst receiver.

    from link_models.ota import FrameConfig, FrameCodec, FrameBuilder, FrameReceiver, reassemble
    codec = FrameCodec(FrameConfig())                  # shared by transmitter and receiver
    frames = FrameBuilder(codec, "qpsk", "ldpc", 1024, 2048).digital_frames(payload, msg_id=7)
    result = FrameReceiver(codec).receive(iq_buffer)   # every frame found in the buffer
    message = reassemble(result.frames, msg_id=7)      # payload bytes, missing frame numbers
    link = RadioLink(radio, LinkConfig(...))           # the link contract (link_models.Link) over a radio
    report = run_loopback(radio, cfg, frame, payload)  # `meg-phy ota` (link_models.ota.experiment)

See docs/over-the-air.md for the frame layout, the receiver and the lab procedure.
Importing this package does not import Sionna until a codec is built.
"""

from link_models.ota.config import FrameConfig

__all__ = ["FrameConfig", "FrameCodec", "FrameBuilder", "FrameReceiver", "reassemble", "Message", "RadioLink",
           "shared_codec", "scale_burst"]


def __getattr__(name: str):
    if name in ("FrameCodec", "FrameBuilder"):
        from link_models.ota import frame

        return getattr(frame, name)
    if name == "FrameReceiver":
        from link_models.ota.receiver import FrameReceiver

        return FrameReceiver
    if name in ("RadioLink", "shared_codec", "scale_burst"):
        from link_models.ota import radio_link

        return getattr(radio_link, name)
    if name in ("reassemble", "Message"):
        from link_models.ota import reassembly

        return getattr(reassembly, name)
    raise AttributeError(f"module 'link_models.ota' has no attribute {name!r}")
