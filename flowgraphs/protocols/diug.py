"""DIUG, Distributed Inferencing UE-Generating: n ESs denoise one latent jointly to the split; the UE finishes.

    UE ==prompt, image==> ES1..ESn   one broadcast each (with image_at = "es": ES1 holds the image and
                                     sends it to the others over backhaul)
    ESi: encode + noise the image; ESi <-border-> ESj: the tiles fused, then steps 0..split, each ES
         advancing its tile seeing the whole latent, tiles exchanged every `exchange_every` steps
    UE <----seed tile i----- ESi     UE: merge the tiles, resume, steps split..end, decode
"""


def run(st):
    ue, servers = "UE", st.g.es
    conds = st.prompt_at(ue, servers)
    images = st.upload_image(ue, servers)
    joint = st.joint.start([st.start(es, image) for es, image in zip(servers, images, strict=True)])
    joint = st.joint.denoise(joint, conds, to=st.split_step())
    parts, noise = zip(*(st.send_latent(es, ue, joint.tile(i)) for i, es in enumerate(servers)), strict=True)
    merged = st.resume(ue, st.merge(ue, list(parts), joint.layout), sum(noise) / len(noise))
    return st.decode(ue, st.denoise(ue, merged, st.encode_prompt(ue, st.task.prompt)))
