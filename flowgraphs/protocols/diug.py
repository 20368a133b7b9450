"""DIUG, Distributed Inferencing UE-Generating: n ESs denoise one latent tile each; the UE finishes.

    UE --prompt (+ image)--> ESi   ESi: encode + noise the image, steps 0..split on its tile
    UE <----seed tile i----- ESi   UE: merge the tiles (overlaps blended), resume, steps split..end, decode
"""


def run(st):
    ue, tiles = "UE", st.tiles()
    parts, noise = [], []
    for i, es in enumerate(st.g.es):
        prompt = st.send_prompt(ue, es, st.task.prompt)
        image = st.input_image(ue, es)
        seed = st.crop(es, st.start(es, image), tiles, i)
        part, noise_var = st.send_seed(es, ue, st.denoise(es, seed, st.encode_prompt(es, prompt), to=st.split_step()))
        parts.append(part)
        noise.append(noise_var)
    merged = st.resume(ue, st.merge(ue, parts, tiles), sum(noise) / len(noise))
    return st.decode(ue, st.denoise(ue, merged, st.encode_prompt(ue, st.task.prompt)))
