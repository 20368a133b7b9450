"""DSUC, Distributed Sketching UE-Completing: n ESs sketch one tile each; the UE stitches and completes.

    UE --prompt (+ image)--> ESi   ESi: few-step img2img on its latent tile, decode, downsample -> sketch tile
    UE <---sketch tile i---- ESi   UE: stitch the tiles, img2img under the prompt at a strength set by the noise
"""


def run(st):
    ue, tiles = "UE", st.tiles()
    parts, noise = [], []
    for i, es in enumerate(st.g.es):
        prompt = st.send_prompt(ue, es, st.task.prompt)
        image = st.input_image(ue, es)
        seed = st.crop(es, st.start_sketch(es, image), tiles, i)
        sketch = st.render_sketch(es, st.denoise(es, seed, st.encode_prompt(es, prompt)))
        part, noise_var = st.send_image(es, ue, sketch, payload="sketch")
        parts.append(part)
        noise.append(noise_var)
    sketch = st.stitch(ue, parts, tiles)
    return st.complete(ue, sketch, st.encode_prompt(ue, st.task.prompt), sum(noise) / len(noise))
