"""CENTRALIZED: the UE uploads its prompt (and image); one ES runs the whole LDM; the final image comes down.

    UE --prompt, image--> ES1      ES1: encode, noise, all denoising steps, decode
    UE <-----image------- ES1      (compressed bytes on a digital hop, raw pixels on an analog one)
"""


def run(st):
    ue, es = "UE", st.g.es[0]
    prompt = st.send_prompt(ue, es, st.task.prompt)
    image = st.input_image(ue, es)
    cond = st.encode_prompt(es, prompt)
    seed = st.denoise(es, st.start(es, image), cond)
    final = st.decode(es, seed)
    return st.send_image(es, ue, final)[0]
