"""UIEG, UE-Inferencing ES-Generating: the UE turns its image into a seed; the ES generates the image.

    UE: encode image, noise to the strength -> seed z_T (the image must be at the UE)
    UE --seed, prompt--> ES1       ES1: resume from the received seed, all denoising steps, decode
    UE <-----image------ ES1
"""


def run(st):
    ue, es = "UE", st.g.es[0]
    seed = st.start(ue, st.ue_image())
    received = st.resume(es, *st.send_latent(ue, es, seed))
    cond = st.encode_prompt(es, st.send_prompt(ue, es, st.task.prompt))
    final = st.decode(es, st.denoise(es, received, cond))
    return st.send_image(es, ue, final)[0]
