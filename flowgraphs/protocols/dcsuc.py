"""DCSUC, Distributed Cooperative Sketching UE-Completing: a chain of ESs sketches; the UE completes.

    UE ==prompt==> ES1..ESn (one broadcast); UE --image--> ES1 (unless ES1 holds it, image_at = "es")
    ES1 --seed--> ES2 ... --> ESn    backhaul hops (wired by default); ESi: its range of the sketch steps
    UE <-------------------sketch-------------------------- ESn     ESn: decode, downsample -> sketch
    UE: img2img under the prompt at a strength set by the sketch's noise
"""


def run(st):
    ue, chain = "UE", st.g.es
    prompts = st.upload_prompt(ue, chain, st.task.prompt)
    seed = st.start_sketch(chain[0], st.input_image(ue, chain[0]))
    for i, es in enumerate(chain):
        if i > 0:
            seed = st.resume(es, *st.send_latent(chain[i - 1], es, seed))
        seed = st.denoise(es, seed, st.encode_prompt(es, prompts[i]), to=st.share(seed, len(chain) - i))
    sketch, noise_var = st.send_image(chain[-1], ue, st.render_sketch(chain[-1], seed), payload="sketch")
    return st.complete(ue, sketch, st.encode_prompt(ue, st.task.prompt), noise_var)
