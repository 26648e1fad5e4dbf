/* Removing a model from the registry. */
#include "sd_registry.h"

#include "sd_conn.h"
#include "sd_jobs.h"
#include "sd_models.h"
#include "sd_search.h"
#include "sd_state.h"

int sd_model_remove(sd_daemon *d, sd_model *m, en_diag *diag) {
    en_diag why;
    int rc = sd_state_remove_model(d, m->id, 0, &why);
    if (rc)
        return en_fail(diag, rc, "model %s was not removed: %s; it stays registered", m->id,
                       why.msg);
    for (sd_job *j = d->jobs; j; j = j->next)
        if (j->model == m && sd_job_live(j)) sd_search_cancel(d, j, NULL);
    sd_model **pp = &d->models;
    while (*pp != m)
        pp = &(*pp)->next;
    *pp = m->next;
    m->removed = 1;
    sd_notify_updated(d, m->id, "removed");
    sd_model_unref(m);
    return 0;
}
