//! The `schema:` of every `conformance/permify-shapes/*.yaml` file (Permify's example
//! schemas), copied so the front-end tests are self-contained.

pub(crate) const PERMIFY_SHAPES: &[(&str, &str)] = &[
    (
        "banking-system",
        r#"entity user {}

entity account {

    // Defines a relation where an account has an owner of type 'user'.
    relation owner @user

    // Attribute to store the balance information of the account.
    attribute balance integer

    // Permission to withdraw from an account.
    // A user can withdraw from an account if the requested amount is less than or equal to the current balance,
    // the requested amount is less than or equal to 5000, and the user is the owner of the account.
    permission withdraw = check_balance(balance) and owner
}

// Rule to verify if a withdrawal is possible.
// The withdrawal is allowed if the current balance can cover the requested amount,
// and if the requested amount doesn't exceed a limit of 5000.
rule check_balance(balance integer) {
    (balance >= context.data.amount) && (context.data.amount <= 5000)
}
"#,
    ),
    (
        "custom-roles",
        r#"entity user {}

entity role {
    // Defines a relation where each role can be assigned to a user.
    relation assignee @user
}

entity dashboard {
    // Represents a relation where users (via their roles) can view the dashboard.
    relation view @role#assignee
    // Represents a relation where users (via their roles) can edit the dashboard.
    relation edit @role#assignee
}

entity task {
    // Represents a relation where users (via their roles) can view the task.
    relation view @role#assignee
    // Represents a relation where users (via their roles) can edit the task.
    relation edit @role#assignee
}
"#,
    ),
    (
        "disney-plus",
        r#"entity user {}

entity account {
    // users own an account.
    relation owner @user

    action create_profile = owner
}

entity profile {
    // accounts can own a multiple profiles.
    relation owner @account

    action edit = owner
    action delete = owner
    action create_watchlist = owner

}

entity watchlist {
    // each profile can own a multiple watch-list.
    relation owner @profile

    action edit = owner
    action delete = owner
    action remove_content = owner

}

entity content {
    // contents can be a part of watch_lists
    relation watchlist @watchlist
    relation user @profile

    attribute age_rating integer
    attribute allowed_region string[]

    action view = check_age(age_rating) and check_region(allowed_region)
    action add_watchlist = user

}

rule check_age(age_rating integer) {
    context.data.age >= age_rating
}

rule check_region(allowed_region string[]) {
    context.data.region in allowed_region
}
"#,
    ),
    (
        "empty",
        r#"entity user {}
"#,
    ),
    (
        "facebook-groups",
        r#"entity user {}

entity group {

    // Relation to represent the members of the group
    relation member @user
    // Relation to represent the admins of the group
    relation admin @user
    // Relation to represent the moderators of the group
    relation moderator @user

    // Permissions for the group entity
    action create = member
    action join = member
    action leave = member
    action invite_to_group = admin
    action remove_from_group = admin or moderator
    action edit_settings = admin or moderator
    action post_to_group = member
    action comment_on_post = member
    action view_group_insights = admin or moderator
}

entity post {

    // Relation to represent the owner of the post
    relation owner @user
    // Relation to represent the group that the post belongs to
    relation group @group

    // Permissions for the post entity
    action view_post = owner or group.member
    action edit_post = owner or group.admin
    action delete_post = owner or group.admin

    permission group_member = group.member
}

entity comment {

    // Relation to represent the owner of the comment
    relation owner @user

    // Relation to represent the post that the comment belongs to
    relation post @post

    // Permissions for the comment entity
    action view_comment = owner or post.group_member
    action edit_comment = owner
    action delete_comment = owner
}

entity like {

    // Relation to represent the owner of the like
    relation owner @user

    // Relation to represent the post that the like belongs to
    relation post @post

    // Permissions for the like entity
    action like_post = owner or post.group_member
    action unlike_post = owner or post.group_member
}

entity poll {

    // Relation to represent the owner of the poll
    relation owner @user

    // Relation to represent the group that the poll belongs to
    relation group @group

    // Permissions for the poll entity
    action create_poll = owner or group.admin
    action view_poll = owner or group.member
    action edit_poll = owner or group.admin
    action delete_poll = owner or group.admin
}

entity file {

    // Relation to represent the owner of the file
    relation owner @user

    // Relation to represent the group that the file belongs to
    relation group @group

    // Permissions for the file entity
    action upload_file = owner or group.member
    action view_file = owner or group.member
    action delete_file = owner or group.admin
}

entity event {

    // Relation to represent the owner of the event
    relation owner @user
    // Relation to represent the group that the event belongs to
    relation group @group

    // Permissions for the event entity
    action create_event = owner or group.admin
    action view_event = owner or group.member
    action edit_event = owner or group.admin
    action delete_event = owner or group.admin
    action RSVP_to_event = owner or group.member
}
"#,
    ),
    (
        "google-docs-simplified",
        r#"entity user {}

entity organization {
    relation group @group
    relation document @document
    relation administrator @user @group#direct_member @group#manager
    relation direct_member @user

    permission admin = administrator
    permission member = direct_member or administrator or group.member
}

entity group {
    relation manager @user @group#direct_member @group#manager
    relation direct_member @user @group#direct_member @group#manager

    permission member = direct_member or manager
}

entity document {
    relation org @organization

    relation viewer  @user  @group#direct_member @group#manager
    relation manager @user @group#direct_member @group#manager

    action edit = manager or org.admin
    action view = viewer or manager or org.admin
}
"#,
    ),
    (
        "instagram",
        r#"entity user {}

entity account {
    // users have accounts
    relation owner @user

    // accounts can follow other users/accounts.
    relation following @user

    // other users/accounts can follow account.
    relation follower @user

    // accounts can be private or public.
    attribute public boolean

    // users can view an account if they're followers, owners, or if the account is not private.
    action view = (owner or follower) or public

}

entity post {
    // posts are linked with accounts.
    relation account @account

    // comments are limited to people followed by the parent account.
    attribute restricted boolean

    // users can view the posts, if they have access to view the linked accounts.
    action view = account.view

    // users can comment and like on unrestricted posts or posts by owners who follow them.
    action comment = account.following not restricted
    action like = account.following not restricted
}
"#,
    ),
    (
        "mercury",
        r#"entity user {}

entity organization {
    relation admin @user
    relation member @user

    attribute admin_approval_limit integer
    attribute member_approval_limit integer
    attribute approval_num integer

    action approve = admin
    action create_account = admin

    permission approval = (member and check_member_approval(approval_num, member_approval_limit)) or (admin and check_admin_approval(approval_num, admin_approval_limit))
}

entity account {
    relation checkings @account
    relation savings @account

    relation owner @organization

    attribute withdraw_limit double
    attribute balance double

    action withdraw = check_balance(balance) and (check_limit(withdraw_limit) or owner.approval)
}

rule check_balance(balance double) {
    balance >= context.data.amount
}

rule check_limit(withdraw_limit double) {
    withdraw_limit >= context.data.amount
}

rule check_admin_approval(approval_num integer, admin_approval_limit integer) {
    approval_num >= admin_approval_limit
}

rule check_member_approval(approval_num integer, member_approval_limit integer) {
    approval_num >= member_approval_limit
}
"#,
    ),
    (
        "notion",
        r#"entity user {}

entity workspace {
    // The owner of the workspace
    relation owner @user
    // Members of the workspace
    relation member @user
    // Guests (users with read-only access) of the workspace
    relation guest @user
    // Bots associated with the workspace
    relation bot @user
    // Admin users who have permission to manage the workspace
    relation admin @user

    // Define permissions for workspace actions
    permission create_page = owner or member or admin
    permission invite_member = owner or admin
    permission view_workspace = owner or member or guest or bot
    permission manage_workspace = owner or admin

    // Define permissions that can be inherited by child entities
    permission read = member or guest or bot or admin
    permission write = owner or admin
}

entity page {
    // The workspace associated with the page
    relation workspace @workspace
    // The user who can write to the page
    relation writer @user
    // The user(s) who can read the page (members of the workspace or guests)
    relation reader @user @workspace#member @workspace#guest

    // Define permissions for page actions
    permission read = reader or workspace.read
    permission write = writer or workspace.write
}

entity database {
    // The workspace associated with the database
    relation workspace @workspace
    // The user who can edit the database
    relation editor @user
    // The user(s) who can view the database (members of the workspace or guests)
    relation viewer @user @workspace#member @workspace#guest

    // Define permissions for database actions
    permission read = viewer or workspace.read
    permission write = editor or workspace.write
    permission create = editor or workspace.write
    permission delete = editor or workspace.write
}

entity block {
    // The page associated with the block
    relation page @page
    // The database associated with the block

    relation database @database
    // The user who can edit the block
    relation editor @user
    // The user(s) who can comment on the block (readers of the parent object)
    relation commenter @user @page#reader

    // Define permissions for block actions
    permission read = database.read or commenter
    permission write = editor or database.write
    permission comment = commenter
}

entity comment {
    // The block associated with the comment
    relation block @block

    // The author of the comment
    relation author @user

    // Define permissions for comment actions
    permission read = block.read
    permission write = author
}

entity template {
// The workspace associated with the template
    relation workspace @workspace
    // The user who creates the template
    relation creator @user

    // The user(s) who can view the page (members of the workspace or guests)
    relation viewer @user @workspace#member @workspace#guest

    // Define permissions for template actions
    permission read = viewer or workspace.read
    permission write = creator or workspace.write
    permission create = creator or workspace.write
    permission delete = creator or workspace.write
}

entity integration {
    // The workspace associated with the integration
    relation workspace @workspace

    // The owner of the integration
    relation owner @user

    // Define permissions for integration actions
    permission read = workspace.read
    permission write = owner or workspace.write
}
"#,
    ),
    (
        "organizations-hierarchies",
        r#"entity user {}

entity organization {

    // organizational roles
    relation admin @user
    relation member @user

}

entity repository {

    // represents repositories parent organization
    relation parent @organization

    // represents owner of this repository
    relation owner  @user

    // permissions
    permission edit   = parent.admin or owner
    permission delete = owner
}
"#,
    ),
    (
        "polymorphic-relations",
        r#"entity googleuser {}

entity facebookuser {}

entity organization {

    // organizational roles
    relation admin @googleuser @facebookuser
    relation member @googleuser @facebookuser

}

entity team {

    // represents owner or creator of the team
    relation owner @googleuser @facebookuser

    // represents direct member of the team
    relation member @googleuser @facebookuser

    // reference for organization that team belong
    relation org @organization

    // organization admins or owners can edit, delete the team details
    permission edit = org.admin or owner
    permission delete = org.admin or owner

    // to invite someone you need to be admin and either owner or member of this team
    permission invite = org.admin and (owner or member)

    // only owners can remove users
    permission remove_user =  owner
}

entity project {

    // references for team and organization that project belongs
    relation team @team
    relation org @organization

    permission view = org.admin or team.member
    permission edit = org.admin or team.member
    permission delete = team.member
}
"#,
    ),
    (
        "public-private-repository",
        r#"entity user {}

entity post {

    relation owner  @user
    attribute is_public boolean

    permission view = is_public or owner
    permission edit = owner
}
"#,
    ),
    (
        "rbac",
        r#"entity user {}

entity organization {

    // roles
    relation admin @user
    relation member @user
    relation manager @user
    relation agent @user

    // organization files access permissions
    permission view_files = admin or manager or (member not agent)
    permission delete_file = admin

    // vendor files access permissions
    permission view_vendor_files = admin or manager or agent
    permission delete_vendor_file = agent

}
"#,
    ),
    (
        "user-groups",
        r#"entity user {}

entity organization {

    // organizational roles
    relation admin @user
    relation member @user

}

entity team {

    // represents owner or creator of the team
    relation owner @user

    // represents direct member of the team
    relation member @user

    // reference for organization that team belong
    relation org @organization

    // organization admins or owners can edit, delete the team details
    permission edit = org.admin or owner
    permission delete = org.admin or owner

    // to invite someone you need to be admin and either owner or member of this team
    permission invite = org.admin and (owner or member)

    // only owners can remove users
    permission remove_user =  owner
}

entity project {

    // references for team and organization that project belongs
    relation team @team
    relation org @organization

    permission view = org.admin or team.member
    permission edit = org.admin or team.member
    permission delete = team.member
}
"#,
    ),
];
