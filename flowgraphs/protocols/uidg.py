"""UIDG, UE-Inferencing Distributed Generating: n ESs each generate one tile of the image.

    UE: encode image, noise to the strength -> seed
    UE --seed, prompt--> ESi       ESi: resume, all denoising steps on its tile of the latent, decode the tile
    UE <--image tile i-- ESi       UE: stitch the tiles (overlaps blended)
"""


def run(st):
    ue, tiles = "UE", st.tiles()
    seed = st.start(ue, st.task.image)
    parts = []
    for i, es in enumerate(st.g.es):
        received = st.resume(es, *st.send_seed(ue, es, seed))
        cond = st.encode_prompt(es, st.send_prompt(ue, es, st.task.prompt))
        part = st.decode(es, st.denoise(es, received, cond, tile=tiles.boxes[i]))
        parts.append(st.send_image(es, ue, part)[0])
    return st.stitch(ue, parts, tiles)
