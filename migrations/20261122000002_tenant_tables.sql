-- Tenant tables. Every one carries workspace_id; child rows reference their parent through
-- (id, workspace_id) so a row can never point at another workspace's parent.

CREATE TABLE workspaces (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CONSTRAINT workspaces_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    created_by  uuid NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- workspaces.id is this table's tenant key: it plays the part of workspace_id in its policies.

CREATE TABLE workspace_members (
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         member_role NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT workspace_members_pkey PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id, workspace_id, role);

CREATE TABLE clients (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         text NOT NULL CONSTRAINT clients_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    email        text CONSTRAINT clients_email_length CHECK (char_length(email) <= 320),
    notes        text NOT NULL DEFAULT '' CONSTRAINT clients_notes_length CHECK (char_length(notes) <= 10000),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT clients_id_workspace_key UNIQUE (id, workspace_id)
);
CREATE INDEX clients_workspace_idx ON clients (workspace_id, id);

CREATE TABLE client_contacts (
    workspace_id uuid NOT NULL,
    client_id    uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT client_contacts_pkey PRIMARY KEY (client_id, user_id),
    CONSTRAINT client_contacts_client_fkey FOREIGN KEY (client_id, workspace_id)
        REFERENCES clients (id, workspace_id) ON DELETE CASCADE
);
CREATE INDEX client_contacts_user_idx ON client_contacts (user_id, client_id, workspace_id);
CREATE INDEX client_contacts_workspace_idx ON client_contacts (workspace_id);

CREATE TYPE project_status AS ENUM ('planned', 'active', 'on_hold', 'completed', 'archived');

CREATE TABLE projects (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    client_id    uuid,
    name         text NOT NULL CONSTRAINT projects_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CONSTRAINT projects_description_length CHECK (char_length(description) <= 10000),
    status       project_status NOT NULL DEFAULT 'active',
    due_date     date,
    created_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_id_workspace_key UNIQUE (id, workspace_id),
    CONSTRAINT projects_client_fkey FOREIGN KEY (client_id, workspace_id)
        REFERENCES clients (id, workspace_id) ON DELETE SET NULL (client_id)
);
-- Listing pages newest first (ids are UUIDv7, so id order is creation order).
CREATE INDEX projects_workspace_idx ON projects (workspace_id, id DESC);
CREATE INDEX projects_client_idx ON projects (client_id, id DESC) WHERE client_id IS NOT NULL;
CREATE INDEX projects_status_idx ON projects (workspace_id, status, id DESC);

CREATE TYPE milestone_status AS ENUM ('open', 'done');

CREATE TABLE milestones (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    project_id   uuid NOT NULL,
    title        text NOT NULL CONSTRAINT milestones_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CONSTRAINT milestones_description_length CHECK (char_length(description) <= 10000),
    status       milestone_status NOT NULL DEFAULT 'open',
    due_date     date,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT milestones_id_project_key UNIQUE (id, project_id),
    CONSTRAINT milestones_project_fkey FOREIGN KEY (project_id, workspace_id)
        REFERENCES projects (id, workspace_id) ON DELETE CASCADE
);
CREATE INDEX milestones_project_idx ON milestones (project_id, id);
CREATE INDEX milestones_workspace_idx ON milestones (workspace_id);

CREATE TYPE deliverable_status AS ENUM ('draft', 'in_review', 'changes_requested', 'approved');

CREATE TABLE deliverables (
    id             uuid PRIMARY KEY,
    workspace_id   uuid NOT NULL,
    project_id     uuid NOT NULL,
    milestone_id   uuid,
    title          text NOT NULL CONSTRAINT deliverables_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    description    text NOT NULL DEFAULT '' CONSTRAINT deliverables_description_length CHECK (char_length(description) <= 10000),
    url            text CONSTRAINT deliverables_url_length CHECK (char_length(url) <= 2048),
    status         deliverable_status NOT NULL DEFAULT 'draft',
    client_visible boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deliverables_project_fkey FOREIGN KEY (project_id, workspace_id)
        REFERENCES projects (id, workspace_id) ON DELETE CASCADE,
    CONSTRAINT deliverables_milestone_fkey FOREIGN KEY (milestone_id, project_id)
        REFERENCES milestones (id, project_id) ON DELETE SET NULL (milestone_id)
);
CREATE INDEX deliverables_project_idx ON deliverables (project_id, id);
CREATE INDEX deliverables_visible_idx ON deliverables (project_id, client_visible);
CREATE INDEX deliverables_workspace_idx ON deliverables (workspace_id);
CREATE INDEX deliverables_milestone_idx ON deliverables (milestone_id) WHERE milestone_id IS NOT NULL;

CREATE TABLE comments (
    id             uuid PRIMARY KEY,
    workspace_id   uuid NOT NULL,
    project_id     uuid NOT NULL,
    author_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    body           text NOT NULL CONSTRAINT comments_body_length CHECK (char_length(body) BETWEEN 1 AND 10000),
    client_visible boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT comments_project_fkey FOREIGN KEY (project_id, workspace_id)
        REFERENCES projects (id, workspace_id) ON DELETE CASCADE
);
CREATE INDEX comments_project_idx ON comments (project_id, id DESC);
CREATE INDEX comments_visible_idx ON comments (project_id, client_visible);
CREATE INDEX comments_workspace_idx ON comments (workspace_id);
CREATE INDEX comments_author_idx ON comments (author_id);

GRANT SELECT, INSERT, UPDATE, DELETE ON
    users, workspaces, workspace_members, clients, client_contacts,
    projects, milestones, deliverables, comments
TO app_api, app_service;
-- Users are created only through app.ensure_user; the API never writes them directly.
REVOKE INSERT, UPDATE, DELETE ON users FROM app_api;
