"""DCSUC, Distributed Cooperative Sketching UE-Completing: a chain of ESs sketches; the UE completes.

    UE --prompt (+ image)--> ES1 --seed, prompt--> ES2 ... --> ESn   ESi: its range of the few sketch steps
    UE <-------------------sketch-------------------------- ESn     ESn: decode, downsample -> sketch
    UE: img2img under the prompt at a strength set by the sketch's noise
"""


def run(st):
    ue, chain = "UE", st.g.es
    prompt = st.send_prompt(ue, chain[0], st.task.prompt)
    image = st.input_image(ue, chain[0])
    seed = st.start_sketch(chain[0], image)
    for i, es in enumerate(chain):
        if i > 0:
            seed = st.resume(es, *st.send_seed(chain[i - 1], es, seed))
            prompt = st.send_prompt(chain[i - 1], es, prompt or "")
        seed = st.denoise(es, seed, st.encode_prompt(es, prompt), to=st.share(seed, len(chain) - i))
    sketch, noise_var = st.send_image(chain[-1], ue, st.render_sketch(chain[-1], seed), payload="sketch")
    return st.complete(ue, sketch, st.encode_prompt(ue, st.task.prompt), noise_var)
