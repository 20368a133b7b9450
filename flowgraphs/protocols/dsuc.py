"""DSUC, Distributed Sketching UE-Completing: n ESs sketch one image jointly, each its tile; the UE completes.

    UE ==prompt, image==> ES1..ESn   one broadcast each (image_at = "es": ES1 sends it over backhaul)
    ESi: few-step img2img start; ESi <-border-> ESj: tiles fused, then the sketch steps, each ES advancing
         its tile seeing the whole latent, tiles exchanged every `exchange_every` steps and after the last
    UE <---sketch tile i---- ESi     ESi decodes with context, downsamples its tile
    UE: stitch the tiles, img2img under the prompt at a strength set by the noise
"""


def run(st):
    ue, servers = "UE", st.g.es
    conds = st.prompt_at(ue, servers)
    images = st.upload_image(ue, servers)
    joint = st.joint.start([st.start_sketch(es, image) for es, image in zip(servers, images, strict=True)])
    joint = st.joint.denoise(joint, conds, last_exchange=True)
    parts, noise = zip(*(st.send_image(es, ue, st.joint.decode_tile(es, joint, i), payload="sketch")
                         for i, es in enumerate(servers)), strict=True)
    sketch = st.stitch(ue, list(parts), joint.layout)
    return st.complete(ue, sketch, st.encode_prompt(ue, st.task.prompt), sum(noise) / len(noise))
